#!/usr/bin/env python3
"""Generates crates/apiserver/src/protobuf_body/schema.rs: the protobuf field
tables of the Kubernetes kinds Portico accepts as protobuf request bodies.

Field numbers and wire types come from the k8s-pb crate's prost attributes.
JSON names, whether a zero value is kept in JSON (pointer fields and fields
without `omitempty`) and inlined structs (`json:",inline"`) come from the
upstream Go types (`k8s.io/api` and `k8s.io/apimachinery` `types.go`, read
by protobuf field number from their struct tags); k8s-openapi's serde names
are the fallback. Run after changing a crate version:

    GO_TYPES=/tmp/k8s-go-types python3 tools/gen_protobuf_schema.py > crates/apiserver/src/protobuf_body/schema.rs

where GO_TYPES holds `api/<group>/v1/types.go` (core, apps, networking,
coordination, discovery, events) and `apimachinery/pkg/apis/meta/v1/types.go`
of the matching Kubernetes release (`git show v0.35.7:core/v1/types.go` in
kubernetes/api, and so on).
"""
import glob, os, re, sys

REG = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))[0]
PB = glob.glob(REG + "k8s-pb-0.9.*/src")[0]
OA = glob.glob(REG + "k8s-openapi-0.28.*/src/v1_32")[0]

ROOTS = [
    "api.core.v1.Service", "api.core.v1.Namespace", "api.core.v1.ConfigMap", "api.core.v1.Secret",
    "api.core.v1.Pod", "api.core.v1.Endpoints", "api.core.v1.Node", "api.core.v1.Event",
    "api.apps.v1.Deployment", "api.apps.v1.ReplicaSet", "api.networking.v1.Ingress",
    "api.networking.v1.IngressClass", "api.coordination.v1.Lease", "api.discovery.v1.EndpointSlice",
]
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
}

GO = os.environ.get("GO_TYPES", "/tmp/k8s-go-types")

# Go struct fields by (protobuf module, struct) -> {tag: (json name, keep zero, inline)}.
go_fields = {}
for path in glob.glob(GO + "/**/types.go", recursive=True):
    rel = os.path.relpath(os.path.dirname(path), GO).split(os.sep)
    module = "api." + ".".join(rel[1:]) if rel[0] == "api" else "apimachinery." + ".".join(rel[1:])
    src = open(path).read()
    for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", src, re.S | re.M):
        fields = {}
        for line in m.group(2).splitlines():
            f = re.match(r"^\t([\w.]+)(?:\s+([^\s`]+))?\s+`([^`]*)`", line)
            if not f:
                continue
            ty, tag = f.group(2), f.group(3)
            js = re.search(r'json:"([^"]*)"', tag)
            pb = re.search(r'protobuf:"\w+,(\d+),', tag)
            if not js or not pb:
                continue
            opts = js.group(1).split(",")
            inline = "inline" in opts[1:]
            pointer = ty is not None and ty.startswith("*")
            keep = pointer or "omitempty" not in opts[1:]
            fields[int(pb.group(1))] = (opts[0], keep, inline)
        go_fields[(module, m.group(1).lower())] = fields

# JSON names by k8s-openapi struct, and globally.
json_by_struct, json_global = {}, {}
for path in glob.glob(OA + "/**/*.rs", recursive=True):
    src = open(path).read()
    for m in re.finditer(r"pub struct (\w+) \{", src):
        pass
    structs = re.findall(r"pub struct (\w+) \{", src)
    pairs = re.findall(r'"([A-Za-z0-9$]+)" => Field::Key_(\w+)', src)
    for s in structs:
        json_by_struct.setdefault(s, {}).update({snake: js for js, snake in pairs})
    for js, snake in pairs:
        json_global.setdefault(snake, js)

def camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])

# Messages from k8s-pb: module path -> struct -> fields.
messages = {}
for path in glob.glob(PB + "/**/mod.rs", recursive=True):
    rel = os.path.relpath(os.path.dirname(path), PB)
    if rel == ".":
        continue
    module = rel.replace(os.sep, ".")
    src = open(path).read()
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", src, re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for f in re.finditer(r"#\[prost\(([^\]]*)\)\]\s*pub (r#)?(\w+):(.*?)(?=\n\s*///|\n\s*#\[|\Z)", body, re.S):
            attr, fname = f.group(1), f.group(3)
            ty = re.sub(r"\s+", "", f.group(4)).rstrip(",").replace(",>", ">")
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            fields.append((tag, fname, attr, ty))
        messages[module + "." + name] = (module, fields)

def resolve(module, ty):
    """Resolve a Rust type path inside `module` to a qualified message name."""
    inner = re.sub(r"^.*?<", "", ty)
    inner = re.sub(r">+$", "", inner)
    inner = inner.replace("::prost::alloc::boxed::Box<", "")
    segs = inner.split("::")
    base = module.split(".")
    out = list(base)
    for s in segs[:-1]:
        if s == "super":
            out.pop()
        elif s:
            out.append(s)
    return ".".join(out + [segs[-1]])

def kind_of(module, attr, ty):
    if attr.startswith("btree_map"):
        v = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
        if v == "message":
            val = re.search(r"BTreeMap<[^,]+,\s*(.+)>$", ty).group(1)
            return ("MapMessage", resolve(module, val))
        return {"string": ("MapString", None), "bytes": ("MapBytes", None)}[v]
    repeated = "repeated" in attr
    t = attr.split(",")[0].strip()
    if t == "message":
        target = resolve(module, ty)
        return ("RepeatedMessage" if repeated else "Message", target)
    scalar = {"string": "String", "int32": "Int", "int64": "Int", "bool": "Bool", "double": "Float", 'bytes = "vec"': "Bytes"}[t]
    return (("Repeated" + scalar) if repeated else scalar, None)

needed, queue = set(), list(ROOTS)
while queue:
    q = queue.pop()
    if q in needed or q in SPECIAL:
        continue
    needed.add(q)
    module, fields = messages[q]
    for tag, fname, attr, ty in fields:
        k, target = kind_of(module, attr, ty)
        if target:
            queue.append(target)

def rust_ident(q):
    return q.replace(".", "_").upper()

print("//! Generated by `tools/gen_protobuf_schema.py` from k8s-pb and k8s-openapi; do not edit.")
print("#![allow(missing_docs)]")
print()
print("use super::wire::{Field, Kind, Msg};")
print()
for q in sorted(needed):
    module, fields = messages[q]
    struct = q.rsplit(".", 1)[1]
    names = json_by_struct.get(struct, {})
    rows = []
    for tag, fname, attr, ty in sorted(fields):
        k, target = kind_of(module, attr, ty)
        go = go_fields.get((module, struct.lower()), {}).get(tag)
        if go is None:
            print(f"no Go field for {module}.{struct} tag {tag} ({fname})", file=sys.stderr)
        js = go[0] if go else (names.get(fname) or json_global.get(fname) or camel(fname))
        keep = "true" if go and go[1] and not target and not k.startswith(("Repeated", "Map")) else "false"
        if go and go[2]:
            js = ""
        if target:
            tk = SPECIAL.get(target)
            if tk and k == "Message":
                kind = f"Kind::{tk}"
            elif tk and k == "RepeatedMessage":
                kind = f"Kind::Repeated(&Kind::{tk})"
            elif tk and k == "MapMessage":
                kind = f"Kind::MapOf(&Kind::{tk})"
            elif k == "MapMessage":
                kind = f"Kind::MapOf(&Kind::Message(&{rust_ident(target)}))"
            elif k == "RepeatedMessage":
                kind = f"Kind::Repeated(&Kind::Message(&{rust_ident(target)}))"
            else:
                kind = f"Kind::Message(&{rust_ident(target)})"
        elif k.startswith("Repeated"):
            kind = f"Kind::Repeated(&Kind::{k[len('Repeated'):]})"
        elif k == "MapString":
            kind = "Kind::MapOf(&Kind::String)"
        elif k == "MapBytes":
            kind = "Kind::MapOf(&Kind::Bytes)"
        else:
            kind = f"Kind::{k}"
        rows.append(f'    Field {{ tag: {tag}, name: "{js}", keep_zero: {keep}, kind: {kind} }},')
    print(f"pub static {rust_ident(q)}: Msg = Msg {{ name: \"{struct}\", fields: &[")
    print("\n".join(rows))
    print("]};")
print()
print("/// Root messages by (apiVersion, kind).")
print("pub static ROOTS: &[(&str, &str, &Msg)] = &[")
for r in ROOTS:
    parts = r.split(".")
    group, version, kind = parts[1], parts[2], parts[3]
    api_version = version if group == "core" else f"{ {'networking': 'networking.k8s.io', 'coordination': 'coordination.k8s.io', 'discovery': 'discovery.k8s.io'}.get(group, group) }/{version}"
    print(f'    ("{api_version}", "{kind}", &{rust_ident(r)}),')
print("];")
