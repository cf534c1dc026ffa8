#!/usr/bin/env python3
"""Prints, for every op effc's importer reads, the opsets in which ONNX changed its
definition (the `since_version`s of the pinned onnx package) and, for the ones after 21,
what changed: the facts behind the table in crates/effc-onnx/src/import/versions.rs."""
import onnx
import onnx.defs as defs

from onnx_node_tests import EFFC_OPS


def describe(schema):
    attrs = {k: (a.type, a.required, str(a.default_value)) for k, a in schema.attributes.items()}
    ins = [(i.name, str(i.option)) for i in schema.inputs]
    outs = [(o.name, str(o.option)) for o in schema.outputs]
    types = {t.type_param_str: set(t.allowed_type_strs) for t in schema.type_constraints}
    return attrs, ins, outs, types


def main():
    versions = {}
    for s in defs.get_all_schemas_with_history():
        if s.domain == "" and s.name in EFFC_OPS:
            versions.setdefault(s.name, []).append(s.since_version)
    print(f"onnx {onnx.__version__}, newest opset {defs.onnx_opset_version()}")
    for op in sorted(versions):
        since = sorted(versions[op])
        print(f'v("{op}", &{since}, ?),')
        for old, new in zip(since, since[1:]):
            if new <= 21:
                continue
            a, b = describe(defs.get_schema(op, old)), describe(defs.get_schema(op, new))
            changes = []
            if a[0] != b[0]:
                changes.append(f"attributes {sorted(set(b[0]) ^ set(a[0]))}")
            if a[1:3] != b[1:3]:
                changes.append("inputs or outputs")
            for k in sorted(set(a[3]) | set(b[3])):
                added = sorted(b[3].get(k, set()) - a[3].get(k, set()))
                if added:
                    changes.append(f"{k} adds {added}")
            if defs.get_schema(op, old).doc != defs.get_schema(op, new).doc:
                changes.append("documentation")
            print(f"    {op}-{old} -> {op}-{new}: {'; '.join(changes) or 'nothing listed'}")


if __name__ == "__main__":
    main()
