"""Minimal EBML (RFC 8794) encoding and bounded decoding helpers.

Writing: an element is its ID (the ID's own bytes, marker bits included), a VINT data size and the
payload. :func:`element` and the typed helpers below build complete elements as ``bytes``.

Reading: :func:`read_header` decodes one element header from a buffer; :func:`iter_children` walks the
children of a master element that is already in memory. Every size is checked against the bytes that
are actually there before anything is sliced or allocated; problems raise
:class:`gvc.errors.BitstreamError` with a one-line message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from gvc.errors import BitstreamError

#: The reserved all-ones 8-byte size: "unknown size" (used for live Segment/Cluster elements).
UNKNOWN_SIZE_VINT = b"\x01\xff\xff\xff\xff\xff\xff\xff"
UNKNOWN = None  # size value returned by the readers for an unknown-size element


# ---------------------------------------------------------------------------------------------- writing
def encode_id(element_id: int) -> bytes:
    """The bytes of an element ID (IDs are stored with their VINT marker bit, 1 to 4 bytes)."""
    if element_id <= 0 or element_id > 0x1FFFFFFF:
        raise ValueError(f"invalid EBML ID 0x{element_id:X}")
    n = (element_id.bit_length() + 7) // 8
    return element_id.to_bytes(n, "big")


def encode_size(size: int, length: int | None = None) -> bytes:
    """A VINT data size; the shortest form unless ``length`` (1..8) forces a width."""
    if size < 0:
        raise ValueError("negative EBML size")
    if length is None:
        length = 1
        while size > (1 << (7 * length)) - 2:  # all-ones is reserved for "unknown"
            length += 1
    if not 1 <= length <= 8 or size > (1 << (7 * length)) - 2:
        raise ValueError(f"EBML size {size} does not fit in {length} bytes")
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def element(element_id: int, payload: bytes) -> bytes:
    return encode_id(element_id) + encode_size(len(payload)) + payload


def uint_bytes(value: int, width: int | None = None) -> bytes:
    if value < 0:
        raise ValueError("negative unsigned integer")
    if width is None:
        width = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(width, "big")


def uint(element_id: int, value: int, width: int | None = None) -> bytes:
    return element(element_id, uint_bytes(value, width))


def sint(element_id: int, value: int) -> bytes:
    width = 1
    while not -(1 << (8 * width - 1)) <= value < (1 << (8 * width - 1)):
        width += 1
    return element(element_id, value.to_bytes(width, "big", signed=True))


def float64(element_id: int, value: float) -> bytes:
    return element(element_id, struct.pack(">d", value))


def string(element_id: int, value: str) -> bytes:
    return element(element_id, value.encode("utf-8"))


def master(element_id: int, *children: bytes) -> bytes:
    return element(element_id, b"".join(children))


# ---------------------------------------------------------------------------------------------- reading
def read_vint(buf: bytes | memoryview, pos: int, end: int, what: str, base: int = 0) -> tuple[int, int, bool]:
    """Decode a VINT at ``buf[pos:end]``: (value without marker, length, is_all_ones).

    The element ID is returned with its marker bits (IDs are compared that way). ``base`` is added to
    positions in error messages (the file offset of ``buf[0]``).
    """
    if pos >= end:
        raise BitstreamError(f"truncated EBML: {what} missing at byte {base + pos}")
    first = buf[pos]
    if first == 0:
        raise BitstreamError(f"invalid EBML: {what} at byte {base + pos} is longer than 8 bytes")
    length = 9 - first.bit_length()
    if pos + length > end:
        raise BitstreamError(f"truncated EBML: {what} at byte {base + pos} needs {length} bytes, "
                             f"{end - pos} present")
    value = int.from_bytes(bytes(buf[pos:pos + length]), "big")
    raw = value
    value &= (1 << (7 * length)) - 1
    all_ones = value == (1 << (7 * length)) - 1
    return (raw if what == "element ID" else value), length, all_ones


def read_header(buf: bytes | memoryview, pos: int, end: int, base: int = 0) -> tuple[int, int | None, int]:
    """Decode an element header at ``pos``: (ID, data size or None when unknown, header length)."""
    element_id, id_len, _ = read_vint(buf, pos, end, "element ID", base)
    if id_len > 4:
        raise BitstreamError(f"invalid EBML: element ID at byte {base + pos} is {id_len} bytes long (max 4)")
    size, size_len, unknown = read_vint(buf, pos + id_len, end, "element size", base)
    return element_id, (None if unknown else size), id_len + size_len


def iter_children(buf: bytes | memoryview, start: int, end: int, parent: str = "element",
                  ) -> Iterator[tuple[int, int, int]]:
    """Yield (ID, data start, data end) for each child in ``buf[start:end]``; sizes are bounds-checked."""
    pos = start
    while pos < end:
        element_id, size, hlen = read_header(buf, pos, end)
        if size is None:
            raise BitstreamError(f"invalid EBML: unknown-size element 0x{element_id:X} inside {parent}")
        data_start = pos + hlen
        data_end = data_start + size
        if data_end > end:
            raise BitstreamError(
                f"truncated EBML: element 0x{element_id:X} in {parent} declares {size} bytes, "
                f"only {end - data_start} left")
        yield element_id, data_start, data_end
        pos = data_end


def parse_uint(data: bytes | memoryview, what: str) -> int:
    if len(data) > 8:
        raise BitstreamError(f"invalid EBML: unsigned integer {what} is {len(data)} bytes long")
    return int.from_bytes(bytes(data), "big")


def parse_sint(data: bytes | memoryview, what: str) -> int:
    if len(data) > 8:
        raise BitstreamError(f"invalid EBML: signed integer {what} is {len(data)} bytes long")
    return int.from_bytes(bytes(data), "big", signed=True) if len(data) else 0


def parse_float(data: bytes | memoryview, what: str) -> float:
    if len(data) == 0:
        return 0.0
    if len(data) == 4:
        return struct.unpack(">f", bytes(data))[0]
    if len(data) == 8:
        return struct.unpack(">d", bytes(data))[0]
    raise BitstreamError(f"invalid EBML: float {what} is {len(data)} bytes long")


def parse_string(data: bytes | memoryview, what: str) -> str:
    try:
        return bytes(data).rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BitstreamError(f"invalid EBML: string {what} is not UTF-8 ({exc.reason})") from None
