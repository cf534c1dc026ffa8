"""Turns bench/run.sh's JSON lines into docs/BENCHMARKS.md."""
import json
import subprocess
import sys


def host_class():
    """Which table of docs/BENCHMARKS.md this host's figures belong in: the widest vector
    ISA, and for AVX-512 the vendor too, since Intel's cores (two 512-bit FMA ports) and
    AMD's Zen 4 (512-bit operations split in two) rank the same kernels differently."""
    info = open("/proc/cpuinfo").read().splitlines()
    flags = next((l for l in info if l.startswith("flags")), "").split()
    vendor = next((l.split(":")[1].strip() for l in info if l.startswith("vendor_id")), "")
    if "avx512f" in flags:
        if vendor == "GenuineIntel":
            return "avx512-intel", "AVX-512 hosts, Intel"
        return "avx512", "AVX-512 hosts, AMD"
    if "avx2" in flags:
        return "avx2", "AVX2-only hosts"
    return "other", "Hosts without AVX2"


def kept_sections(path, replaced):
    """The host-class sections of an existing report other than `replaced`, so that one
    run on each class of host builds up the whole file."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        return []
    sections, current = [], None
    for line in text.splitlines():
        if line.startswith("<!-- host: "):
            current = [line] if line != f"<!-- host: {replaced} -->" else None
        elif line == "<!-- end host -->":
            if current is not None:
                sections.append("\n".join(current + [line]))
            current = None
        elif current is not None:
            current.append(line)
    return sections


def lower_middle(items):
    """The median of sorted `items` (the lower middle one for an even count)."""
    return items[(len(items) - 1) // 2]


def median_round(entries):
    """The entry whose median_ms is the median over rounds."""
    return lower_middle(sorted(entries, key=lambda e: e["median_ms"]))


def per_round(ratios):
    """The median of sorted per-round ratios and their range."""
    return f"{lower_middle(ratios):.3f} ({ratios[0]:.3f}–{ratios[-1]:.3f})"


def combine(lines):
    """One row per (model, threads): for effc, onnxruntime and tract separately, the round
    with the median median_ms. Rounds alternate the runtimes, so a burst of load from
    another tenant lands in one round of one of them, and the median drops it."""
    rows, order = {}, []
    for l in lines:
        key = (l["model"], l["effc"]["kernels"], l["threads"])
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append(l)
    out = []
    for key in order:
        rounds = rows[key]
        effc = dict(median_round([r["effc"] for r in rounds]))
        tracts = [r["effc"]["tract"] for r in rounds if r["effc"].get("tract")]
        if tracts:
            effc["tract"] = median_round(tracts)
        ratios = sorted(r["effc"]["median_ms"] / r["ort"]["median_ms"] for r in rounds)
        out.append(
            {
                **rounds[0],
                "rounds": len(rounds),
                "effc": effc,
                "ort": median_round([r["ort"] for r in rounds]),
                "round_ratios": ratios,
            }
        )
    return out


def main():
    rows = combine([json.loads(l) for l in open(sys.argv[1]) if l.strip()])
    out = sys.argv[2]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    ort_version = next((r["ort"]["version"] for r in rows), "?")
    cores = sum(1 for l in open("/proc/cpuinfo") if l.startswith("processor"))
    peaks = {r["effc"]["peak_isa"]: r["effc"]["peak_gflops"] for r in rows}
    host, title = host_class()
    lines = [
        f"<!-- host: {host} -->",
        f"## {title}",
        "",
        "Written by `bench/run.sh`; every number in a row comes from the same run of the script,",
        "on the same seeded input. Latencies are medians in ms (batch 1, fp32): each runtime is",
        f"measured in {rows[0]['rounds']} rounds that alternate effc and onnxruntime, and the table",
        "shows each one's median round. Ratios below 1 mean effc is faster. The last column",
        "divides each round's effc median by the onnxruntime median measured right after it:",
        "the median of those ratios, and their range. Where it and the column of medians",
        "disagree, load from another tenant of the machine disturbed several rounds of one",
        "runtime (the second core is shared, so two-thread rounds suffer most).",
        "",
        f"- Machine: {rows[0]['effc']['cpu']}, {cores} cores; single-core FMA peak measured by `effc bench`:",
        "  " + ", ".join(f"{g:.0f} GFLOP/s ({isa})" for isa, g in peaks.items()) + "; % of peak is",
        "  of the peak at the width of the kernels in that row.",
        f"- effc {rev}, {rustc}; tract-onnx 0.23.9 (single-threaded);",
        f"  onnxruntime {ort_version} (CPU execution provider, intra-op threads as listed, all",
        "  graph optimisations).",
        "",
        "| model | kernels | threads | effc ms | onnxruntime ms | tract ms | effc / onnxruntime | effc / tract | effc GFLOP/s | % of peak | effc / onnxruntime per round: median (range) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e, o, t = r["effc"], r["ort"], r["effc"].get("tract")
        tract_ms = f"{t['median_ms']:.2f}" if t else "—"
        vs_tract = f"{e['median_ms'] / t['median_ms']:.3f}" if t else "—"
        lines.append(
            f"| {r['model']} | {e['kernels']} | {r['threads']} | {e['median_ms']:.2f} | {o['median_ms']:.2f} | {tract_ms} | "
            f"{e['median_ms'] / o['median_ms']:.3f} | {vs_tract} | {e['gflops']:.1f} | {e['percent_of_peak']:.1f} | "
            f"{per_round(r['round_ratios'])} |"
        )
    lines += ["", "### Startup and memory", "", "| model | effc compile (file → ready) ms | effc peak RSS MB | onnxruntime session ms |", "|---|---|---|---|"]
    seen = set()
    for r in rows:
        if r["model"] in seen or r["threads"] != 1 or r["effc"]["kernels"] != rows[0]["effc"]["kernels"]:
            continue
        seen.add(r["model"])
        lines.append(f"| {r['model']} | {r['effc']['compile_ms']:.1f} | {r.get('rss_mb', float('nan')):.1f} | {r['ort']['load_ms']:.1f} |")
    lines += [
        "",
        "effc's compile time is the median of several compilations in one process; its peak RSS",
        "is the process's high-water mark (VmHWM) after compiling and running the model alone,",
        "without tract loaded.",
        "",
        "Models: `tv_b0_*` are the shared torchvision EfficientNet-B0 exports (224×224);",
        "`lite0` (relu6, no squeeze-excite, 224×224), `b4` (380×380) and",
        "`mobilenet_v3_small` (torchvision's layout: hard-swish, hard-sigmoid squeeze-excite,",
        "224×224) are written by `examples/write_efficientnet.rs` with seeded weights.",
        "<!-- end host -->",
    ]
    kept = kept_sections(out, host)
    head = [
        "# Benchmarks",
        "",
        "One section per class of host, each from one run of `bench/run.sh` on such a host",
        "(a run replaces its own class's section and keeps the others).",
    ]
    sections = sorted(kept + ["\n".join(lines)], key=lambda sec: sec.splitlines()[0])
    open(out, "w").write("\n\n".join(["\n".join(head)] + sections) + "\n")


if __name__ == "__main__":
    main()
