"""Field tables of docs/bitstream.md, generated from the construct structures themselves.

    python -m container.spec            # print the tables
    python -m container.spec --write    # refresh them in docs/bitstream.md

Every structure of container/bitstream.py has a table (field, type, bytes) and a byte budget. A test checks
that the document's tables equal these, so the spec and the code cannot drift apart.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import construct as cs

from . import bitstream as bs

DOC = Path(__file__).resolve().parents[1] / "docs" / "bitstream.md"
STRUCTURES = {
    "Unit": bs.UnitSyntax,
    "SequenceHeader": bs.SequenceHeaderSyntax,
    "GopUnit": bs.GopUnitSyntax,
    "Anchor": bs.AnchorSyntax,
    "AnchorPicture": bs.AnchorPictureSyntax,
    "ResidualHeader": bs.ResidualHeaderSyntax,
    "ResidualPayload": bs.ResidualPayloadSyntax,
    "IndexSets": bs.IndexSetsSyntax,
    "IndexSet": bs.IndexSetSyntax,
}
_SIMPLE = {
    cs.Int8ub: ("u8", 1), cs.Int16ub: ("u16", 2), cs.Int32ub: ("u32", 4), cs.Float32b: ("f32", 4),
    cs.Flag: ("flag", None), cs.VarInt: ("VarInt", None),
}


def describe(sub: cs.Construct) -> str:
    """A short type description of a construct field (the doc's 'type' column)."""
    if getattr(sub, "docs", ""):
        return sub.docs
    if sub in _SIMPLE:
        return _SIMPLE[sub][0]
    if isinstance(sub, cs.Renamed):
        return describe(sub.subcon)
    if isinstance(sub, cs.Const):
        return f"bytes = {sub.value!r}" if isinstance(sub.value, bytes) else f"{describe(sub.subcon)} = {sub.value}"
    if isinstance(sub, cs.Enum):
        pairs = ", ".join(f"{v}={k}" for k, v in sorted(sub.encmapping.items(), key=lambda kv: kv[1]))
        return f"{describe(sub.subcon)} enum ({pairs})"
    if isinstance(sub, cs.Bytes):
        n = sub.length
        return f"bytes[{n}]" if isinstance(n, int) else "bytes[length]"
    if isinstance(sub, cs.StringEncoded):
        return f"{describe(sub.subcon.lengthfield)} length + {sub.encoding} text"
    if isinstance(sub, cs.Prefixed):
        inner = sub.subcon.subcon if isinstance(sub.subcon, cs.RawCopy) else sub.subcon
        return f"{describe(sub.lengthfield)} length + {_name_of(inner) or 'bytes'}"
    if isinstance(sub, cs.FocusedSeq):  # PrefixedArray
        count, items = sub.subcons
        return f"{describe(count.subcon.subcon)} count + {_name_of(items.subcon.subcon)}[count]"
    if isinstance(sub, cs.IfThenElse):
        return f"if {_cond(sub)}: {describe(sub.thensubcon)}"
    if isinstance(sub, cs.Transformed):  # BitStruct
        return f"bits [{', '.join(_bit_field(s) for s in sub.subcon.subcons if s.name)}] (MSB first)"
    if isinstance(sub, cs.RawCopy):
        return "sync, unit_type, length, payload (see Unit framing)"
    if isinstance(sub, cs.Checksum):
        return "u32 CRC-32 (zlib) over all preceding unit bytes"
    if isinstance(sub, cs.BitsInteger):
        return f"u{sub.length}"
    if isinstance(sub, cs.Struct):
        return _name_of(sub)
    return type(sub).__name__


def _bit_field(s: cs.Renamed) -> str:
    sub = s.subcon
    if sub is cs.Flag:
        return f"{s.name}:1"
    if isinstance(sub, cs.Const):
        return f"{s.name}:{sub.subcon.length}={sub.value}"
    if isinstance(sub, cs.Enum):
        pairs = ", ".join(f"{v}={k}" for k, v in sorted(sub.encmapping.items(), key=lambda kv: kv[1]))
        return f"{s.name}:{sub.subcon.length} enum ({pairs})"
    return f"{s.name}:{sub.length}"


def size(sub: cs.Construct) -> str:
    """The doc's 'bytes' column: a number for fixed-size fields, 'n+' for the least a variable one takes."""
    if isinstance(sub, cs.Renamed):
        return size(sub.subcon)
    if sub in _SIMPLE and _SIMPLE[sub][1]:
        return str(_SIMPLE[sub][1])
    if sub is cs.VarInt or isinstance(sub, (cs.Prefixed, cs.StringEncoded, cs.FocusedSeq)):
        return "1+"  # a VarInt takes 1 byte per 7 bits of its value
    if isinstance(sub, cs.Enum):
        return size(sub.subcon)
    if isinstance(sub, (cs.Const, cs.Checksum)):
        return str(sub.sizeof()) if not isinstance(getattr(sub, "subcon", None), cs.BitsInteger) else "bits"
    if isinstance(sub, cs.Bytes) and isinstance(sub.length, int):
        return str(sub.length)
    if isinstance(sub, cs.Transformed):
        return str(sub.sizeof())
    if isinstance(sub, cs.IfThenElse):
        return "0 or " + size(sub.thensubcon)
    if isinstance(sub, cs.Struct):
        return f"{_least_bytes(sub)}+"
    return "var"


def _least_bytes(struct: cs.Struct) -> int:
    total = 0
    for s in _fields(struct):
        n = size(s)
        if n.startswith("0 or"):
            continue
        total += int(n.rstrip("+")) if n.rstrip("+").isdigit() else 0
    return total


def _fields(struct: cs.Construct) -> list:
    if struct is bs.UnitSyntax:  # expand the RawCopy'd body: the framing is one flat table in the doc
        return [s for s in struct.subcons[0].subcon.subcon.subcons + struct.subcons[1:] if s.name]
    if isinstance(struct, (cs.Transformed, cs.Restreamed)):  # Bitwise
        struct = struct.subcon
    return [s for s in struct.subcons if s.name]


def _cond(sub: cs.IfThenElse) -> str:
    text = re.sub(r"this\['flags'\]\['(\w+)'\]", r"flags.\1", repr(sub.condfunc))
    return re.sub(r"this\['(\w+)'\]", r"\1", text)


def _name_of(sub) -> str | None:
    for name, s in STRUCTURES.items():
        if s is sub:
            return name
    return None


def budget(name: str) -> str:
    """One line: the least bytes a structure takes and what makes it longer."""
    struct = STRUCTURES[name]
    if isinstance(struct, (cs.Transformed, cs.Restreamed)) or name == "IndexSet":
        return ("Byte budget: Σ over sets of (⌈log2 C(K, M)⌉ + M) bits, closed on a byte "
                "(`combination_bits`, `index_sets_nbytes` in gvc/entropy/combinatorial.py).")
    fixed = sum(int(size(s)) for s in _fields(struct) if size(s).isdigit())
    least = _least_bytes(struct)
    grows = [f"`{s.name}`" for s in _fields(struct) if not size(s).isdigit()]
    return (f"Byte budget: at least {least} bytes, {fixed} of them in fixed-size fields; "
            f"grows with {', '.join(grows)}." if grows else f"Byte budget: {fixed} bytes.")


def table(name: str) -> str:
    rows = [f"<!-- fields:{name} (generated by python -m container.spec; do not edit) -->",
            "| # | field | type | bytes |", "|---|---|---|---|"]
    for n, s in enumerate(_fields(STRUCTURES[name]), 1):
        rows.append(f"| {n} | `{s.name}` | {describe(s)} | {size(s)} |")
    rows += ["", budget(name), f"<!-- end fields:{name} -->"]
    return "\n".join(rows)


def refresh(text: str) -> str:
    for name in STRUCTURES:
        pattern = re.compile(rf"<!-- fields:{name} .*?<!-- end fields:{name} -->", re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/bitstream.md lacks the table markers for {name}")
        text = pattern.sub(lambda _: table(name), text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m container.spec", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="rewrite the tables in docs/bitstream.md")
    a = p.parse_args(argv)
    if a.write:
        DOC.write_text(refresh(DOC.read_text()))
    else:
        print("\n\n".join(table(n) for n in STRUCTURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
