//! The C header of an artifact: its link line first, then the API's declarations.

use super::Artifact;

/// A model's own text (file and tensor names) made safe inside a C comment.
fn comment_safe(text: &str) -> String {
    let printable: String = text.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    printable.replace("*/", "* /")
}

fn dims(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

pub(super) fn write(a: &Artifact, archive_path: &str, source: &str) -> String {
    let n = &a.name;
    let guard = format!("{}_EFFC_H", n.to_ascii_uppercase());
    let mut io = String::new();
    for (what, list) in [("input", &a.inputs), ("output", &a.outputs)] {
        for (i, t) in list.iter().enumerate() {
            io.push_str(&format!("/* {what} {i}: \"{}\", f32 [{}] */\n", comment_safe(&t.name), dims(&t.shape)));
        }
    }
    let features = if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") };
    format!(
        "// link: {link}
// {n}: {source} compiled ahead of time by effc {version} for --target-cpu {target}
// (CPU features checked by {n}_new: {features}), {kernels}.
// Inputs and outputs are dense row-major f32 arrays in the model's own layout. A context
// is used by one thread at a time; any number of contexts share the weights, which are
// read-only data of the library. Scratch memory per context: {arena} bytes.
#ifndef {guard}
#define {guard}

#include <stddef.h>

#ifdef __cplusplus
extern \"C\" {{
#endif

#define {n}_NUM_INPUTS {inputs}
#define {n}_NUM_OUTPUTS {outputs}
{io}
/* f32 elements of input i (0 past the last input). */
size_t {n}_input_size(size_t i);
/* f32 elements of output i (0 past the last output). */
size_t {n}_output_size(size_t i);
/* The model's name of input i (NULL past the last input). */
const char *{n}_input_name(size_t i);
/* The model's name of output i (NULL past the last output). */
const char *{n}_output_name(size_t i);

typedef struct {n}_ctx {n}_ctx;

/* A context to run the model with. threads: {threads}. NULL on failure: the CPU lacks a
   feature the code was compiled for, more threads asked for, or no memory;
   {n}_last_error() says which. */
{n}_ctx *{n}_new(int threads);

/* Runs the model: inputs[i] points at {n}_input_size(i) floats, outputs[i] at
   {n}_output_size(i). Returns 0, or non-zero with {n}_last_error() saying why. */
int {n}_run({n}_ctx *ctx, const float *const *inputs, float *const *outputs);

/* One line: why the last failing {n}_new or {n}_run failed (\"\" if none has). The
   library keeps one message for all threads. */
const char *{n}_last_error(void);

/* Frees a context (NULL is fine). */
void {n}_free({n}_ctx *ctx);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
",
        link = a.link_command(archive_path),
        kernels = match a.micro {
            Some(isa) => format!("{} micro-kernels from {}", isa.name(), super::RUNTIME_FILE),
            None => "Cranelift code only (--kernels jit)".into(),
        },
        threads = if a.needs_runtime {
            "0 or 1 runs on the calling thread; more (up to 1024) share each\n   step with a team of threads the context owns (the caller is one of them)"
        } else {
            "0 or 1 (this artifact runs on the calling thread; artifacts with\n   micro-kernels run on a team)"
        },
        source = comment_safe(source),
        version = env!("CARGO_PKG_VERSION"),
        target = a.target.name(),
        arena = a.arena_bytes,
        inputs = a.inputs.len(),
        outputs = a.outputs.len(),
    )
}
