"""Where the bytes of a GVC stream go, per mode and GOP, read back from the written file (python -m tools.byte_split).

    python -m tools.byte_split --clip PATH [--frames 65] [--modes t2v i2v flf2v] [--prior analytic]
                               [--quality 4 8] [--format mkv|gvc] [--gop-length 33] [--steps 20]
                               [--size WxH] [--no-residual-study] [--keep DIR] [--out FILE.json]
    python -m tools.byte_split --file STREAM.mkv|STREAM.gvc     # split an existing stream only

Every (mode, quality) is encoded through the library API (``gvc.pipeline.encode_stream``, what ``gvc encode``
runs) and the written file is then taken apart with the bitstream parser (container/bitstream.py) and an EBML walk of
the Matroska file; nothing is estimated.  Categories (bits; bytes = bits / 8; they sum exactly to the
file size, which the tool asserts):

* ``sequence_header``  the SequenceHeader unit's payload (once per stream);
* ``unit_framing``     sync + unit type + VarInt length + CRC-32 (7-10 bytes per unit, sequence header and GOPs);
* ``gop_fixed``        GopUnit fields other than content: gop_index .. m_plus_steps (VarInts and flags),
                       frame_hash (16), the anchor count, per anchor role + codec + VarInt length, the VarInt
                       length prefixes of prompt, indices and residual;
* ``prompt``           prompt text;
* ``anchors``          anchor payloads (the ~3-byte GVC anchor header + the image codec's stream);
* ``atom_indices``     combinatorial ranks, ceil(log2 C(K, M)) bits per (step, latent frame) set;
* ``signs``            one bit per chosen atom;
* ``index_padding``    zero bits closing the indices field on a byte;
* ``residual``         the I2V tail-latent residual payload;
* ``matroska``         everything the Matroska mapping adds (EBML header, SeekHead, Info, Tracks without
                       the sequence header, Tags, Attachments, Cluster heads, BlockGroup framing, Cues);
                       0 for an elementary stream.

With ``--residual-study`` (default on, I2V only) the real tail residuals of the encode (each GOP record's
``residual_target``) are kept and GVC's residual coder is compared with the GVCC reference scheme (per-channel max-abs
normalisation, 8-bit quantisation, zlib; ``reference_residual_bytes``): bytes, latent MSE, and the PSNR of
each GOP decoded with no residual, ours, the reference, and ours at the step whose quantisation error
matches the reference's.  JSON goes to stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from container import bitstream as bs
from container import ebml
from container import matroska as mk

CATEGORIES = ("sequence_header", "unit_framing", "gop_fixed", "prompt", "anchors", "atom_indices", "signs",
              "index_padding", "residual", "matroska")

_ELEMENT_NAMES = {
    mk.EBML: "EBML", mk.SEGMENT: "Segment", mk.SEEK_HEAD: "SeekHead", mk.INFO: "Info", mk.TRACKS: "Tracks",
    mk.TAGS: "Tags", mk.ATTACHMENTS: "Attachments", mk.CLUSTER: "Cluster", mk.CUES: "Cues", mk.VOID: "Void",
    mk.TIMESTAMP: "Timestamp", mk.BLOCK_GROUP: "BlockGroup", mk.SIMPLE_BLOCK: "SimpleBlock", mk.BLOCK: "Block",
    mk.BLOCK_DURATION: "BlockDuration", mk.REFERENCE_BLOCK: "ReferenceBlock", mk.TRACK_ENTRY: "TrackEntry",
    mk.CODEC_PRIVATE: "CodecPrivate",
}


# ------------------------------------------------------------------------------------------- Matroska walk
def _header(buf: bytes, pos: int, end: int) -> tuple[int, int | None, int]:
    return ebml.read_header(buf, pos, end)


def walk_matroska(data: bytes) -> dict:
    """Take a GVC Matroska file apart: the sequence header unit (from CodecPrivate), the GOP units (from the
    blocks, in file order) and the bytes of every container element around them."""
    size = len(data)
    el_id, hsize, hlen = _header(data, 0, size)
    if el_id != mk.EBML or hsize is None:
        raise ValueError("not a Matroska file")
    parts = {"ebml_header": hlen + hsize}
    pos = hlen + hsize
    while True:
        el_id, seg_size, seg_hlen = _header(data, pos, size)
        if el_id == mk.SEGMENT:
            break
        parts["void_before_segment"] = parts.get("void_before_segment", 0) + seg_hlen + seg_size
        pos += seg_hlen + seg_size
    parts["segment_head"] = seg_hlen
    seg_unknown = seg_size is None
    seg_start = pos + seg_hlen
    seg_end = size if seg_unknown else seg_start + seg_size
    if seg_end != size:
        parts["after_segment"] = size - seg_end
    top = {mk.SEEK_HEAD, mk.INFO, mk.TRACKS, mk.TAGS, mk.ATTACHMENTS, mk.CLUSTER, mk.CUES, mk.VOID, mk.CRC32,
           0x1043A770, 0x1B538667}
    seq_unit = None
    codec_private_prefix = 0
    blocks: list[dict] = []
    clusters: list[dict] = []
    pos = seg_start
    while pos < seg_end:
        el_id, el_size, el_hlen = _header(data, pos, seg_end)
        name = _ELEMENT_NAMES.get(el_id, f"0x{el_id:X}")
        if el_id == mk.CLUSTER:
            cstart = pos + el_hlen
            cend = seg_end if el_size is None else cstart + el_size
            cluster = {"offset": pos, "head": el_hlen, "timestamp_element": 0, "blocks": 0, "unknown_size": el_size is None}
            p = cstart
            while p < cend:
                cid, csize, chlen = _header(data, p, cend)
                if el_size is None and cid in top:
                    break  # an unknown-size cluster ends at the next top-level element
                if cid == mk.TIMESTAMP:
                    cluster["timestamp_element"] += chlen + csize
                elif cid in (mk.BLOCK_GROUP, mk.SIMPLE_BLOCK):
                    blocks.append(_block(data, p, cid, csize, chlen, len(clusters)))
                    cluster["blocks"] += 1
                else:
                    cluster["other"] = cluster.get("other", 0) + chlen + csize
                p += chlen + csize
            cluster["bytes"] = p - pos
            clusters.append(cluster)
            pos = p
            continue
        if el_size is None:
            raise ValueError(f"unknown-size element {name} at byte {pos}")
        total = el_hlen + el_size
        key = {"SeekHead": "seek_head", "Info": "info", "Tracks": "tracks", "Tags": "tags",
               "Attachments": "attachments", "Cues": "cues", "Void": "void"}.get(name, "other_top_level")
        parts[key] = parts.get(key, 0) + total
        if el_id == mk.TRACKS:
            seq_unit, codec_private_prefix = _codec_private(data, pos + el_hlen, pos + total)
        pos += total
    if seq_unit is None:
        raise ValueError("no V_MS/VFW/FOURCC track with a GVC sequence header")
    return {"parts": parts, "sequence_header_unit": seq_unit, "codec_private_prefix": codec_private_prefix,
            "blocks": blocks, "clusters": clusters, "segment_unknown_size": seg_unknown}


def _codec_private(data: bytes, start: int, end: int) -> tuple[bytes | None, int]:
    for tid, a, b in ebml.iter_children(data, start, end, "Tracks"):
        if tid != mk.TRACK_ENTRY:
            continue
        for eid, c, d in ebml.iter_children(data, a, b, "TrackEntry"):
            if eid == mk.CODEC_PRIVATE and d - c >= 40 and data[c + 16:c + 20] == b"GVC1":
                bi_size = int.from_bytes(data[c:c + 4], "little")
                stop = c + bi_size if 40 < bi_size <= d - c else d
                return data[c + 40:stop], 40
    return None, 0


def _block(data: bytes, pos: int, el_id: int, size: int, hlen: int, cluster: int) -> dict:
    """One block's unit bytes and its framing: BlockGroup and Block element headers, the 4-byte block header
    (track number, relative timestamp, flags), BlockDuration, ReferenceBlock."""
    end = pos + hlen + size
    out = {"offset": pos, "bytes": hlen + size, "cluster": cluster, "group_head": 0, "block_head": 0,
           "block_header": 0, "block_duration": 0, "reference_block": 0, "other": 0, "keyframe": None}
    if el_id == mk.SIMPLE_BLOCK:
        out["block_head"] = hlen
        frame_start, out["keyframe"] = _block_body(data, pos + hlen, end, simple=True)
        out["block_header"] = frame_start - (pos + hlen)
        frame_end = end
    else:
        out["group_head"] = hlen
        out["keyframe"] = True  # a BlockGroup without ReferenceBlock is a keyframe
        frame_start = frame_end = None
        p = pos + hlen
        while p < end:
            cid, csize, chlen = ebml.read_header(data, p, end)
            if csize is None or p + chlen + csize > end:
                raise ValueError(f"bad element in BlockGroup at byte {p}")
            if cid == mk.BLOCK:
                out["block_head"] = chlen
                frame_start, _ = _block_body(data, p + chlen, p + chlen + csize, simple=False)
                out["block_header"] = frame_start - (p + chlen)
                frame_end = p + chlen + csize
            elif cid == mk.BLOCK_DURATION:
                out["block_duration"] = chlen + csize
            elif cid == mk.REFERENCE_BLOCK:
                out["reference_block"] = chlen + csize
                out["keyframe"] = False
            else:
                out["other"] += chlen + csize
            p += chlen + csize
        if frame_start is None:
            raise ValueError(f"BlockGroup at byte {pos} without a Block")
    out["unit"] = data[frame_start:frame_end]
    out["overhead"] = out["bytes"] - len(out["unit"])
    return out


def _block_body(data: bytes, start: int, end: int, simple: bool) -> tuple[int, bool | None]:
    track, tlen, _ = ebml.read_vint(data, start, end, "track number")
    flags = data[start + tlen + 2]
    if flags & 0x06:
        raise ValueError("laced block: not written by GVC")
    return start + tlen + 3, (bool(flags & 0x80) if simple else None)


# ------------------------------------------------------------------------------------------- unit split
def split_gop_unit(unit_bytes: bytes, header: bs.SequenceHeader) -> dict:
    """Bits of one GOP unit per category, from the parsed unit (sums to 8 * len(unit_bytes))."""
    from gvc.entropy.combinatorial import combination_bits
    from gvc.gop import gop_atoms, gop_plan, header_geometry

    u = bs.GopUnit.from_bytes(unit_bytes)
    plan = gop_plan(u.gop_index, u.frame_count, header.gop_length, header.gop_overlap, header_geometry(header))
    ms = gop_atoms(header, plan, u.codebook_m, u.codebook_m_tail, u.m_plus_steps)
    rank_bits = sum(combination_bits(u.codebook_k, m) for m in ms)
    sign_bits = sum(ms)
    pad_bits = 8 * len(u.indices) - rank_bits - sign_bits
    if not 0 <= pad_bits < 8:
        raise ValueError(f"GOP {u.gop_index}: indices field of {len(u.indices)} bytes does not match "
                         f"{rank_bits} rank + {sign_bits} sign bits")
    prompt = len(u.prompt.encode()) if u.prompt is not None else 0
    payload = bs.parse_unit(unit_bytes)[1]
    anchors = sum(len(a.data) for a in u.anchors)
    residual = len(u.residual or b"")
    fixed = len(payload) - prompt - anchors - len(u.indices) - residual
    bits = {
        "unit_framing": 8 * (len(unit_bytes) - len(payload)),
        "gop_fixed": 8 * fixed,
        "prompt": 8 * prompt,
        "anchors": 8 * anchors,
        "atom_indices": rank_bits,
        "signs": sign_bits,
        "index_padding": pad_bits,
        "residual": 8 * residual,
    }
    if sum(bits.values()) != 8 * len(unit_bytes):
        raise AssertionError(f"GOP {u.gop_index}: split {sum(bits.values())} bits != {8 * len(unit_bytes)}")
    return {
        "gop": u.gop_index, "first_frame": u.first_frame, "frames": u.frame_count, "keyframe": u.keyframe,
        "k": u.codebook_k, "m": u.codebook_m, "m_tail": u.codebook_m_tail, "m_plus_steps": u.m_plus_steps,
        "index_sets": len(ms), "unit_bytes": len(unit_bytes), "bits": bits,
        "anchor_detail": [{"role": a.role, "codec": a.codec, "bytes": len(a.data),
                           "gvc_anchor_header": _anchor_header_bytes(a.data)} for a in u.anchors],
        "residual_detail": _residual_detail(u.residual) if u.residual is not None else None,
    }


def _anchor_header_bytes(payload: bytes) -> int:
    return len(payload) - len(bs.AnchorPictureSyntax.parse(payload).data)


def _residual_detail(payload: bytes) -> dict:
    p = bs.ResidualPayloadSyntax.parse(payload)
    return {"mode": bs.RESIDUAL_MODELS[p.header.model], "header": len(payload) - 4 * len(p.words),
            "ans_words": len(p.words)}


def split_file(path: str | os.PathLike) -> dict:
    """Split a written GVC stream (.mkv or .gvc) into the categories; totals sum exactly to the file size."""
    data = Path(path).read_bytes()
    size = len(data)
    if data[:4] == bs.SYNC:
        units = list(bs.UnitReader(__import__("io").BytesIO(data)))
        bad = [u for u in units if isinstance(u, Exception)]
        if bad:
            raise ValueError(f"damaged stream: {bad[0]}")
        seq, gop_units = units[0], units[1:]
        mkv = None
        block_overheads = [0] * len(gop_units)
        cluster_share = [0] * len(gop_units)
        fmt = "gvc"
    else:
        mkv = walk_matroska(data)
        seq = mkv["sequence_header_unit"]
        gop_units = [b["unit"] for b in mkv["blocks"]]
        block_overheads = [b["overhead"] for b in mkv["blocks"]]
        # a Cluster's head and Timestamp are charged to the first block in it
        cluster_share = [0] * len(gop_units)
        seen = set()
        for i, b in enumerate(mkv["blocks"]):
            if b["cluster"] not in seen:
                seen.add(b["cluster"])
                c = mkv["clusters"][b["cluster"]]
                cluster_share[i] = c["head"] + c["timestamp_element"] + c.get("other", 0)
        fmt = "mkv"
    header = bs.SequenceHeader.from_bytes(seq)
    gops = []
    for i, ub in enumerate(gop_units):
        g = split_gop_unit(ub, header)
        g["bits"]["matroska"] = 8 * (block_overheads[i] + cluster_share[i])
        if mkv is not None:
            b = mkv["blocks"][i]
            g["matroska_detail"] = {k: b[k] for k in ("group_head", "block_head", "block_header", "block_duration",
                                                      "reference_block", "other")}
            g["matroska_detail"]["cluster_head_and_timestamp"] = cluster_share[i]
            g["matroska_keyframe"] = b["keyframe"]
        gops.append(g)
    stream_bits = {c: 0 for c in CATEGORIES}
    seq_payload = len(bs.parse_unit(seq)[1])
    stream_bits["sequence_header"] = 8 * seq_payload
    stream_bits["unit_framing"] = 8 * (len(seq) - seq_payload)
    stream_level_matroska = 0
    if mkv is not None:
        in_gops = sum(block_overheads) + sum(cluster_share)
        stream_level_matroska = size - len(seq) - sum(map(len, gop_units)) - in_gops
        stream_bits["matroska"] = 8 * stream_level_matroska
    totals = dict(stream_bits)
    for g in gops:
        for k, v in g["bits"].items():
            totals[k] += v
    if sum(totals.values()) != 8 * size:
        raise AssertionError(f"{path}: parts sum to {sum(totals.values())} bits, file has {8 * size}")
    out = {
        "file": os.path.basename(os.fspath(path)), "format": fmt, "file_bytes": size,
        "mode": header.mode, "width": header.width, "height": header.height, "fps": str(header.fps),
        "frame_count": header.frame_count, "gop_length": header.gop_length, "prior": header.prior_id,
        "sequence_header_unit_bytes": len(seq),
        "stream_level_bits": stream_bits,
        "gops": gops,
        "total_bits": totals,
        "total_bytes": {k: v / 8 for k, v in totals.items()},
    }
    if mkv is not None:
        p = dict(mkv["parts"])
        p["tracks_without_sequence_header"] = p.pop("tracks") - len(seq)
        p["codec_private_bitmapinfoheader"] = mkv["codec_private_prefix"]
        out["matroska"] = {
            "stream_level_parts": p,  # tracks_without_sequence_header includes the 40-byte BITMAPINFOHEADER
            "stream_level_bytes": stream_level_matroska,
            "stream_level_bytes_without_cues": sum(v for k, v in p.items()
                                                   if k not in ("cues", "codec_private_bitmapinfoheader")),
            "clusters": len(mkv["clusters"]),
            "segment_unknown_size": mkv["segment_unknown_size"],
            "cluster_unknown_size": any(c["unknown_size"] for c in mkv["clusters"]),
            "per_block_overhead": [b["overhead"] for b in mkv["blocks"]],
            "per_cluster_head": [c["head"] + c["timestamp_element"] for c in mkv["clusters"]],
            "block_keyframes": [b["keyframe"] for b in mkv["blocks"]],
        }
    return out


# ------------------------------------------------------------------------------------------- encoding
def encode(clip: str, out: str, mode: str, quality: int, args) -> tuple[dict, dict]:
    """Encode `clip` into `out`; returns the encode's stats and {GOP index: the unquantised I2V tail residual}."""
    from ffmpeg_bridge.video_io import VideoReader
    from gvc.config import CodecConfig, default
    from gvc.pipeline import encode_stream

    config = CodecConfig(mode=mode, quality=quality, prior=args.prior, gop_length=args.gop_length, steps=args.steps,
                         ode_tail=default("ode_tail") if args.ode_tail is None else args.ode_tail)
    residuals: dict[int, object] = {}

    def keep_residual(record) -> None:
        if record.residual_target is not None:
            residuals[record.gop] = record.residual_target

    with VideoReader(clip, max_frames=args.frames or None) as reader:
        report = encode_stream(reader, out, config, on_gop=keep_residual, fmt=args.format)
    return report.as_dict(os.path.getsize(out)), residuals


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from gvc.metrics import psnr

    return float(psnr(a, b))


def residual_study(path: str, clip: str, targets: dict, frames_limit: int | None, prior_name: str,
                   step: float) -> dict:
    """Ours vs the reference residual scheme on the encode's residuals; PSNR of each GOP decoded with each."""
    import torch

    from container.io import StreamReader
    from ffmpeg_bridge.video_io import VideoReader
    from gvc.codec import GopCodec
    from gvc.entropy.residual import decode_residual, encode_residual, reference_residual_bytes
    from gvc.priors import load_prior

    with VideoReader(clip, max_frames=frames_limit) as r:
        source = list(r)
    with StreamReader(path) as reader:
        header = reader.header
        units = [u for u in reader.units()]
    codec = GopCodec(load_prior(prior_name, header=header), header)
    rows = []
    for unit in units:
        plan = codec.plan(unit.gop_index, unit.frame_count)
        src = source[plan.first_frame + plan.output_from: plan.first_frame + plan.real_frames]
        if unit.residual is None or unit.gop_index not in targets:
            codec.decode(unit)  # keeps the chain
            continue
        r = targets[unit.gop_index]
        ours = decode_residual(unit.residual)
        ref_bytes, ref_rec = reference_residual_bytes(r)
        C = r.shape[0]
        ref_steps = 2.0 * r.abs().reshape(C, -1).amax(dim=1).clamp(min=1e-6) / 255.0
        matched_step = float(torch.sqrt((ref_steps**2).mean()))
        matched = encode_residual(r, matched_step)
        # "ours" last: the frame GOP k hands on to GOP k+1 is then the real stream's
        variants = {"none": None, "reference": ref_rec.to(torch.float32),
                    "ours_at_reference_step": decode_residual(matched), "ours": ours}
        row = {"gop": unit.gop_index, "shape": list(r.shape), "residual_rms": float(r.pow(2).mean().sqrt()),
               "ours_step": step, "reference_steps_mean": float(ref_steps.mean()),
               "matched_step": matched_step,
               "bytes": {"none": 0, "ours": len(unit.residual), "reference": ref_bytes,
                         "ours_at_reference_step": len(matched)},
               "latent_mse": {}, "psnr_gop": {}, "psnr_last_frame": {}}
        outputs = {}
        for name, rec in variants.items():
            row["latent_mse"][name] = float((r - (0 if rec is None else rec)).pow(2).mean())
            if rec is None:
                out = codec.decode(bs.GopUnit(**{**unit.__dict__, "residual": None}))
            else:
                out = codec.decode(unit, residual=rec.clone())
            outputs[name] = out
            row["psnr_gop"][name] = float(np.mean([_psnr(a, b) for a, b in zip(src, out)]))
            row["psnr_last_frame"][name] = _psnr(src[-1], out[-1])
        row["ours_matches_stream_hash"] = bs.frame_hash(outputs["ours"]) == unit.frame_hash
        rows.append(row)
    if not rows:
        return {"gops": []}
    tot = lambda key, name: sum(r[key][name] for r in rows)  # noqa: E731
    names = ("none", "ours", "reference", "ours_at_reference_step")
    return {
        "gops": rows,
        "total_bytes": {n: tot("bytes", n) for n in names},
        "mean_psnr_gop": {n: float(np.mean([r["psnr_gop"][n] for r in rows])) for n in names},
        "mean_psnr_last_frame": {n: float(np.mean([r["psnr_last_frame"][n] for r in rows])) for n in names},
        "mean_latent_mse": {n: float(np.mean([r["latent_mse"][n] for r in rows])) for n in names},
    }


def _prepare_clip(clip: str, size: str | None, frames: int | None, work: Path) -> str:
    if not size:
        return clip
    from ffmpeg_bridge.ffmpeg import run_ffmpeg

    w, h = (int(v) for v in size.lower().split("x"))
    out = work / f"{Path(clip).stem}_{w}x{h}.y4m"
    cmd = ["-y", "-i", clip]
    if frames:
        cmd += ["-frames:v", str(frames)]
    run_ffmpeg(cmd + ["-vf", f"scale={w}:{h}:flags=bicubic", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(out)])
    return str(out)


def table(result: dict) -> str:
    """A Markdown table of the totals (bytes) per run."""
    head = "| mode | M | file B | " + " | ".join(CATEGORIES) + " | PSNR dB |"
    rows = [head, "|" + "---|" * (len(CATEGORIES) + 4)]
    for run in result["runs"]:
        s = run["split"]
        cells = [f"{s['total_bytes'][c]:g}" for c in CATEGORIES]
        rows.append(f"| {run['mode']} | {run['quality']} | {s['file_bytes']} | " + " | ".join(cells)
                    + f" | {run['psnr']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from gvc.config import MODES, default

    ap = argparse.ArgumentParser(prog="python -m tools.byte_split", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--clip", help="input video (any ffmpeg-decodable file or y4m)")
    src.add_argument("--file", help="split an existing .mkv/.gvc stream and exit")
    ap.add_argument("--frames", type=int, default=65, help="frames to encode (default 65: two GOPs of 33)")
    ap.add_argument("--size", help="scale the clip to WxH first (default: native size)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--prior", default="analytic")
    ap.add_argument("--quality", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--format", choices=("mkv", "gvc"), default="mkv")
    ap.add_argument("--gop-length", type=int, default=default("gop_length"))
    ap.add_argument("--steps", type=int, default=default("steps"))
    ap.add_argument("--ode-tail", type=int, default=None)
    ap.add_argument("--no-residual-study", dest="residual_study", action="store_false")
    ap.add_argument("--keep", metavar="DIR", help="keep the encoded files in DIR")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)

    if args.file:
        print(json.dumps(split_file(args.file), indent=1))
        return 0
    work_ctx = tempfile.TemporaryDirectory(prefix="gvc-split-") if not args.keep else None
    work = Path(args.keep or work_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        clip = _prepare_clip(args.clip, args.size, args.frames, work)
        runs = []
        for mode in args.modes:
            for q in args.quality:
                out = str(work / f"{Path(clip).stem}_{mode}_m{q}.{args.format}")
                study = args.residual_study and mode == "i2v"
                stats, residuals = encode(clip, out, mode, q, args)
                split = split_file(out)
                if split["file_bytes"] != os.path.getsize(out):  # pragma: no cover
                    raise AssertionError("file size changed")
                run = {"mode": mode, "quality": q, "bytes": split["file_bytes"], "frames": stats["frames"],
                       "bpp": stats["bpp"], "kbps": stats["kbps"], "psnr": stats["psnr"], "split": split}
                if study:
                    run["residual_study"] = residual_study(out, clip, residuals, args.frames, args.prior,
                                                           default("residual_step"))
                runs.append(run)
                print(f"{mode} M={q}: {split['file_bytes']} B, PSNR {stats['psnr']:.2f} dB: " + ", ".join(
                    f"{k} {v:g}" for k, v in split["total_bytes"].items() if v), file=sys.stderr)
        result = {
            "clip": os.path.basename(args.clip), "frames": args.frames, "size": args.size or "native",
            "prior": args.prior, "format": args.format, "gop_length": args.gop_length, "steps": args.steps,
            "command": "python -m tools.byte_split " + " ".join(sys.argv[1:] if argv is None else argv),
            "categories": list(CATEGORIES),
            "runs": runs,
        }
        result["table_markdown"] = table(result)
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
