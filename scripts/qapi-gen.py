#!/usr/bin/env python3
"""qapi-gen.py: turn qnic's option schema (qapi/*.json) into C tables and docs.

Every -netdev type, -device model and -object type qnic accepts is described
once, in JSON, and this script (Python 3 standard library only) checks those
files, resolves `base` inheritance and aliases, and writes:

  qapi-schema.c  the `qnic_schema_types[]` table of include/qnic/schema.h
  options.md     a Markdown reference of every type and option

A malformed schema fails the build with a message naming the file, the type
and the property at fault.

A bool property may name the device feature bit it offers ("feature": a C
constant, from the headers the file lists in "c_include"), so the device's
realize reads the bit from the table instead of a table of its own. A type
(or base) with "sort": true lists its own options and those of its sorted
bases in name order, after the options of its other bases, as QEMU's
`-device MODEL,help` lists them.

Usage: qapi-gen.py --output-dir DIR [scripts/qapi-gen.py] FILE.json...
"""

import argparse
import json
import os
import re
import sys

KINDS = ("device", "netdev", "object", "chardev", "base")
PROP_TYPES = {
    "str": "QNIC_PROP_STR",
    "bool": "QNIC_PROP_BOOL",
    "uint": "QNIC_PROP_UINT",
    "int": "QNIC_PROP_INT",
    "size": "QNIC_PROP_SIZE",
    "mac": "QNIC_PROP_MAC",
    "enum": "QNIC_PROP_ENUM",
    "onoffauto": "QNIC_PROP_ONOFFAUTO",
}
TYPE_KEYS = {"kind", "name", "alias_of", "bus", "category", "help", "base", "props", "sort"}
PROP_KEYS = {"name", "type", "default", "help", "values", "min", "max",
             "required", "repeat", "feature"}
C_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INCLUDE_RE = re.compile(r"^[A-Za-z0-9_./-]+\.h$")
BOOL_WORDS = {"on": "on", "yes": "on", "true": "on", "off": "off", "no": "off",
              "false": "off"}
SIZE_RE = re.compile(r"^(\d+)([bkmgtpe]?)$", re.IGNORECASE)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


class SchemaError(Exception):
    pass


def fail(where, msg):
    raise SchemaError("%s: %s" % (where, msg))


def parse_int(where, what, v):
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, str):
            try:
                return int(v, 0)
            except ValueError:
                pass
        fail(where, "%s must be an integer, not %r" % (what, v))
    return v


def normalize_default(where, p):
    """Check a default against its type; return it in the C checker's form."""
    d = p.get("default")
    if d is None:
        return None
    t = p["type"]
    if isinstance(d, bool):
        d = "on" if d else "off"
    if isinstance(d, int):
        d = str(d)
    if not isinstance(d, str):
        fail(where, "default must be a string, not %r" % (d,))
    if t == "bool":
        if d not in BOOL_WORDS:
            fail(where, "bool default must be on/off, not %r" % d)
        return BOOL_WORDS[d]
    if t == "onoffauto":
        if d != "auto" and d not in BOOL_WORDS:
            fail(where, "onoffauto default must be on/off/auto, not %r" % d)
        return "auto" if d == "auto" else BOOL_WORDS[d]
    if t in ("uint", "int"):
        try:
            # C's leading-zero octal ("0700"), as the C parser reads it
            n = int(d, 8) if re.match(r"^0[0-7]+$", d) else int(d, 0)
        except ValueError:
            fail(where, "%s default must be a number, not %r" % (t, d))
        if t == "uint" and n < 0:
            fail(where, "uint default must not be negative")
        lo, hi = p.get("min"), p.get("max")
        if lo is not None and n < lo:
            fail(where, "default %d is below min %d" % (n, lo))
        if hi is not None and n > hi:
            fail(where, "default %d is above max %d" % (n, hi))
        return str(n)
    if t == "size":
        m = SIZE_RE.match(d)
        if not m:
            fail(where, "size default must be a number with optional k/M/G/T suffix, "
                 "not %r" % d)
        shift = "bkmgtpe".index(m.group(2).lower()) * 10 if m.group(2) else 0
        return str(int(m.group(1)) << shift)
    if t == "mac":
        if not re.match(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$", d):
            fail(where, "mac default must look like 52:54:00:12:34:56, not %r" % d)
        return d.lower().replace("-", ":")
    if t == "enum":
        if d not in p["values"]:
            fail(where, "enum default %r is not one of %r" % (d, p["values"]))
    return d


def check_prop(where, p):
    if not isinstance(p, dict):
        fail(where, "a property must be an object, not %r" % (p,))
    extra = set(p) - PROP_KEYS
    if extra:
        fail(where, "unknown property field(s) %s" % ", ".join(sorted(extra)))
    name = p.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        fail(where, "property name must be a non-empty identifier, not %r" % (name,))
    where = "%s, property '%s'" % (where, name)
    t = p.get("type")
    if t not in PROP_TYPES:
        fail(where, "type must be one of %s, not %r" % (", ".join(PROP_TYPES), t))
    for flag in ("required", "repeat"):
        if flag in p and not isinstance(p[flag], bool):
            fail(where, "'%s' must be true or false" % flag)
    if "help" in p and p["help"] is not None and not isinstance(p["help"], str):
        fail(where, "help must be a string")
    if t == "enum":
        vals = p.get("values")
        if (not isinstance(vals, list) or not vals
                or not all(isinstance(v, str) and v for v in vals)):
            fail(where, "an enum needs a non-empty list of string 'values'")
        if len(set(vals)) != len(vals):
            fail(where, "enum values repeat")
    elif "values" in p:
        fail(where, "'values' only applies to enum properties")
    for lim in ("min", "max"):
        if lim in p:
            if t not in ("uint", "int", "size"):
                fail(where, "'%s' only applies to uint, int and size properties" % lim)
            p[lim] = parse_int(where, lim, p[lim])
    if "min" in p and "max" in p and p["min"] > p["max"]:
        fail(where, "min %d is above max %d" % (p["min"], p["max"]))
    if t in ("uint", "size") and p.get("min", 0) < 0:
        fail(where, "min of an unsigned property must not be negative")
    if t == "int":
        for lim in ("min", "max"):
            if lim in p and not INT64_MIN <= p[lim] <= INT64_MAX:
                fail(where, "%s is outside the int64 range" % lim)
    if p.get("required") and p.get("default") is not None:
        fail(where, "a required property cannot have a default")
    if "feature" in p:
        if t != "bool":
            fail(where, "'feature' only applies to bool properties")
        if not isinstance(p["feature"], str) or not C_IDENT_RE.match(p["feature"]):
            fail(where, "'feature' must name a C constant, not %r" % (p["feature"],))
    p["default"] = normalize_default(where, p)


def load(paths, includes):
    types = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise SchemaError("%s: cannot read schema: %s" % (path, e))
        if not isinstance(doc, dict) or not isinstance(doc.get("types"), list):
            raise SchemaError('%s: expected an object {"types": [...]}' % path)
        extra = set(doc) - {"types", "c_include"}
        if extra:
            raise SchemaError("%s: unknown top-level key(s) %s" % (path, ", ".join(sorted(extra))))
        inc = doc.get("c_include", [])
        if not isinstance(inc, list) or not all(isinstance(h, str) and INCLUDE_RE.match(h)
                                                for h in inc):
            raise SchemaError("%s: c_include must be a list of header names" % path)
        includes += [h for h in inc if h not in includes]
        for i, t in enumerate(doc["types"]):
            where = "%s: types[%d]" % (path, i)
            if not isinstance(t, dict):
                fail(where, "a type must be an object")
            extra = set(t) - TYPE_KEYS
            if extra:
                fail(where, "unknown field(s) %s" % ", ".join(sorted(extra)))
            name = t.get("name")
            if not isinstance(name, str) or not NAME_RE.match(name):
                fail(where, "name must be a non-empty identifier, not %r" % (name,))
            where = "%s: %s '%s'" % (path, t.get("kind"), name)
            if t.get("kind") not in KINDS:
                fail(where, "kind must be one of %s, not %r" % (", ".join(KINDS), t.get("kind")))
            for field in ("alias_of", "bus", "category", "help"):
                if t.get(field) is not None and not isinstance(t[field], str):
                    fail(where, "'%s' must be a string or null" % field)
            base = t.get("base", [])
            if isinstance(base, str):
                base = [base]
            if not isinstance(base, list) or not all(isinstance(b, str) for b in base):
                fail(where, "'base' must be a list of base type names")
            t["base"] = base
            if not isinstance(t.get("sort", False), bool):
                fail(where, "'sort' must be true or false")
            props = t.get("props", [])
            if not isinstance(props, list):
                fail(where, "'props' must be a list")
            seen = set()
            for p in props:
                check_prop(where, p)
                if p["name"] in seen:
                    fail(where, "property '%s' is defined twice" % p["name"])
                seen.add(p["name"])
            t["props"] = props
            t["where"] = where
            types.append(t)
    return types


def resolve(types):
    by_kind = {}
    for t in types:
        key = (t["kind"], t["name"])
        if key in by_kind:
            fail(t["where"], "defined twice (also %s)" % by_kind[key]["where"])
        by_kind[key] = t

    def flatten(t, stack):
        if "resolved" in t:
            return t["resolved"]
        if t["name"] in stack:
            fail(t["where"], "base inheritance loop: %s" % " -> ".join(stack + [t["name"]]))
        out = []
        sorted_ids = set(id(p) for p in t["props"])
        for b in t["base"]:
            bt = by_kind.get(("base", b))
            if bt is None:
                fail(t["where"], "unknown base '%s' (bases are 'kind': 'base' types, "
                     "see qapi/common.json)" % b)
            for p in flatten(bt, stack + [t["name"]]):
                out = [q for q in out if q["name"] != p["name"]] + [p]
                if bt.get("sort"):
                    sorted_ids.add(id(p))
        for p in t["props"]:
            # a type's own property overrides an inherited one of the same name
            out = [q for q in out if q["name"] != p["name"]] + [p]
        if t.get("sort"):
            out = ([p for p in out if id(p) not in sorted_ids] +
                   sorted((p for p in out if id(p) in sorted_ids), key=lambda p: p["name"]))
        t["resolved"] = out
        return out

    for t in types:
        flatten(t, [])
    for t in types:
        if t.get("alias_of"):
            if t["kind"] == "base":
                fail(t["where"], "a base cannot be an alias")
            target = by_kind.get((t["kind"], t["alias_of"]))
            if target is None:
                fail(t["where"], "alias_of '%s': no such %s" % (t["alias_of"], t["kind"]))
            if target.get("alias_of"):
                fail(t["where"], "alias_of '%s' is itself an alias" % t["alias_of"])
            if not t["resolved"]:
                t["resolved"] = target["resolved"]
                for f in ("bus", "category", "help"):
                    if t.get(f) is None:
                        t[f] = target.get(f)
    return [t for t in types if t["kind"] != "base"]


def c_str(s):
    if s is None:
        return "NULL"
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7f and c != "?":   # '?' escaped to dodge trigraphs
            out.append(c)
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def c_ident(s):
    return re.sub(r"[^A-Za-z0-9]", "_", s)


def gen_c(types, inputs, includes):
    lines = [
        "/*",
        " * The option schema of every -netdev, -device and -object type, generated",
        " * by scripts/qapi-gen.py from %s." % ", ".join(os.path.basename(p) for p in inputs),
        " * Do not edit: change the JSON and rebuild.",
        " */",
        '#include "qnic/schema.h"',
    ] + ["#include <%s>" % h for h in includes] + [
        "",
    ]
    kinds = {"device": "QNIC_SCHEMA_DEVICE", "netdev": "QNIC_SCHEMA_NETDEV",
             "object": "QNIC_SCHEMA_OBJECT", "chardev": "QNIC_SCHEMA_CHARDEV"}
    for t in types:
        ident = "%s_%s" % (t["kind"], c_ident(t["name"]))
        t["ident"] = ident
        for p in t["resolved"]:
            if p["type"] == "enum":
                lines.append("static const char *const enum_%s_%s[] = { %s, NULL };" % (
                    ident, c_ident(p["name"]), ", ".join(c_str(v) for v in p["values"])))
        lines.append("static const QnicPropDesc props_%s[] = {" % ident)
        for p in t["resolved"]:
            mx = p.get("max", 0)
            if p["type"] in ("uint", "size") and mx > INT64_MAX:
                mx = 0                      # beyond int64: treated as unbounded
            fields = [
                ".name = %s" % c_str(p["name"]),
                ".type = %s" % PROP_TYPES[p["type"]],
                ".def = %s" % c_str(p.get("default")),
                ".help = %s" % c_str(p.get("help")),
            ]
            if p["type"] == "enum":
                fields.append(".enum_values = enum_%s_%s" % (ident, c_ident(p["name"])))
            if p.get("min"):
                fields.append(".min = INT64_C(%d)" % p["min"] if p["min"] != INT64_MIN
                              else ".min = INT64_MIN")
            if mx:
                fields.append(".max = INT64_C(%d)" % mx)
            if p.get("required"):
                fields.append(".required = true")
            if p.get("repeat"):
                fields.append(".repeat = true")
            if p.get("feature"):
                fields.append(".has_feature = true, .feature = %s" % p["feature"])
            lines.append("    { %s }," % ", ".join(fields))
        lines.append("    { .name = NULL },")
        lines.append("};")
        lines.append("static const QnicSchemaType type_%s = {" % ident)
        lines.append("    .kind = %s, .name = %s, .alias_of = %s," % (
            kinds[t["kind"]], c_str(t["name"]), c_str(t.get("alias_of"))))
        lines.append("    .bus = %s, .category = %s," % (c_str(t.get("bus")),
                                                         c_str(t.get("category"))))
        lines.append("    .help = %s, .props = props_%s," % (c_str(t.get("help")), ident))
        lines.append("};")
        lines.append("")
    lines.append("const QnicSchemaType *const qnic_schema_types[] = {")
    for t in types:
        lines.append("    &type_%s," % t["ident"])
    lines.append("    NULL,")
    lines.append("};")
    return "\n".join(lines) + "\n"


def md_escape(s):
    return (s or "").replace("|", "\\|").replace("\n", " ")


def prop_type_md(p):
    t = p["type"]
    if t == "enum":
        return "enum: " + ", ".join("`%s`" % v for v in p["values"])
    if t in ("uint", "int", "size") and ("min" in p or "max" in p):
        lo = p.get("min", 0 if t != "int" else None)
        hi = p.get("max")
        return "%s (%s..%s)" % (t, "" if lo is None else lo, "" if hi is None else hi)
    return t


def gen_md(types):
    out = ["# qnic options", "",
           "Generated by scripts/qapi-gen.py from qapi/*.json: do not edit by hand.",
           "Syntax and error messages: see cmdline.md. Sizes take k/M/G/T suffixes"
           " (1024-based); booleans take on/off, yes/no, true/false.", ""]
    sections = [("netdev", "Network backends (`-netdev TYPE,id=ID,...`)"),
                ("device", "Devices (`-device MODEL,...`)"),
                ("object", "Objects (`-object TYPE,id=ID,...`)"),
                ("chardev", "Character devices (`-chardev BACKEND,id=ID,...`)")]
    for kind, title in sections:
        sel = [t for t in types if t["kind"] == kind]
        if not sel:
            continue
        out += ["## " + title, ""]
        for t in sorted(sel, key=lambda t: t["name"]):
            out.append("### `%s`" % t["name"])
            out.append("")
            if t.get("alias_of"):
                out += ["Alias of `%s`." % t["alias_of"], ""]
                continue
            meta = []
            if t.get("help"):
                meta.append(t["help"])
            if t.get("bus"):
                meta.append("Bus: %s." % t["bus"])
            if meta:
                out += [" ".join(meta), ""]
            if not t["resolved"]:
                out += ["No options.", ""]
                continue
            out.append("| Option | Type | Default | Description |")
            out.append("|---|---|---|---|")
            for p in t["resolved"]:
                flags = []
                if p.get("required"):
                    flags.append("required")
                if p.get("repeat"):
                    flags.append("repeatable")
                desc = md_escape(p.get("help"))
                if flags:
                    desc = ("(%s) " % ", ".join(flags)) + desc
                out.append("| `%s` | %s | %s | %s |" % (
                    p["name"], md_escape(prop_type_md(p)),
                    "`%s`" % p["default"] if p.get("default") is not None else "",
                    desc.strip()))
            out.append("")
    return "\n".join(out) + "\n"


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    me = os.path.abspath(__file__)
    inputs = [p for p in args.inputs
              if os.path.abspath(p) != me and not p.endswith(".py")]
    includes = []
    try:
        types = resolve(load(inputs, includes))
    except SchemaError as e:
        sys.stderr.write("qapi-gen: error: %s\n" % e)
        return 1
    os.makedirs(args.output_dir, exist_ok=True)
    write_if_changed(os.path.join(args.output_dir, "qapi-schema.c"), gen_c(types, inputs, includes))
    write_if_changed(os.path.join(args.output_dir, "options.md"), gen_md(types))
    return 0


if __name__ == "__main__":
    sys.exit(main())
