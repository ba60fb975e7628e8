"""The unit index of a .gvc elementary stream: where each GOP unit starts, what it covers, whether it is
a keyframe. The elementary stream has no index of its own (a pipe can carry it); a seekable file is
scanned once, unit framing by unit framing, and a seek then starts reading at a unit's byte offset.
Matroska files use their Cues instead (container.matroska).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from gvc.errors import BitstreamError

from .bitstream import CRC_BYTES, SYNC, UNIT_PREFIX_MAX_BYTES, GopUnit, _unit_prefix, parse_unit


@dataclass(frozen=True)
class UnitEntry:
    offset: int  # byte offset of the unit's sync code in the file
    size: int  # bytes of the whole unit (framing and CRC included)
    gop_index: int
    first_frame: int
    frame_count: int
    keyframe: bool


def scan_units(f) -> list[UnitEntry]:
    """Index the GOP units of a seekable .gvc file (the sequence header is skipped). A damaged unit is
    left out and scanning resumes at the next sync code, as the decoder would."""
    f.seek(0, 2)
    if f.tell() == 0:
        return []
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        entries, pos = [], data.find(SYNC)
        while pos >= 0:
            try:
                _, length, prefix = _unit_prefix(data[pos:pos + UNIT_PREFIX_MAX_BYTES])
                end = pos + prefix + length + CRC_BYTES
                kind, payload = parse_unit(data[pos:end])
                if kind == "gop":
                    u = GopUnit.from_payload(payload)
                    entries.append(UnitEntry(pos, end - pos, u.gop_index, u.first_frame, u.frame_count, u.keyframe))
            except BitstreamError:
                pos = data.find(SYNC, pos + 1)
                continue
            pos = data.find(SYNC, end) if end < len(data) else -1
    return entries


def entry_for(entries: list[UnitEntry], gop_index: int, keyframe: bool) -> UnitEntry | None:
    """The unit to start reading at to reach GOP `gop_index`: the last unit at or before it, or the last
    keyframe at or before it. None when the index has none (read from the start)."""
    best = None
    for e in entries:
        if e.gop_index <= gop_index and (e.keyframe or not keyframe):
            if best is None or e.gop_index > best.gop_index:
                best = e
    return best
