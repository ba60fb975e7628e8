"""`gvc info`: what a GVC file holds, as ffprobe would tell it: the container (format, size, duration,
bit rate, tags), its tracks, the sequence header, and per GOP its time range, keyframe flag and the
bytes of each payload. One dict, printed as text or JSON by the CLI."""

from __future__ import annotations

from fractions import Fraction

from container.bitstream import GopUnit, SequenceHeader
from container.io import StreamReader
from .errors import GVCError
from .seek import output_start


def gop_entry(h: SequenceHeader, u: GopUnit) -> dict:
    """One GOP: output frames [pts, pts + frames) and their times, keyframe flag, bytes per payload."""
    pts = output_start(h, u.gop_index)
    frames = u.frame_count - (h.gop_overlap if u.gop_index else 0)
    anchors = {a.role: len(a.data) for a in u.anchors}
    size = len(u.to_bytes())
    payloads = {"index_bytes": len(u.indices), "anchor_bytes": sum(anchors.values()),
                "residual_bytes": len(u.residual or b""), "prompt_bytes": len((u.prompt or "").encode())}
    return {
        "gop": u.gop_index, "pts": pts, "frames": frames, "start_time": float(pts / h.fps),
        "end_time": float((pts + frames) / h.fps), "keyframe": u.keyframe, "first_frame": u.first_frame,
        "span_frames": u.frame_count, "bytes": size, **payloads, "anchors": anchors,
        "other_bytes": size - sum(payloads.values()),  # unit framing, fields, frame hash
        "k": u.codebook_k, "m": u.codebook_m, "m_tail": u.codebook_m_tail, "m_plus_steps": u.m_plus_steps,
    }


def tracks(path, fmt: str, h: SequenceHeader, frames: int, warnings: list[str]) -> list[dict]:
    """The file's tracks. A .gvc holds the video only; Matroska tracks are listed through PyAV, where the
    GVC track is the video stream FFmpeg has no decoder for (FourCC GVC1). A file FFmpeg cannot open (damaged
    where GVC's own reader recovered) lists the GVC track alone, with the reason in ``warnings``."""
    gvc_track = {"codec": "gvc", "type": "video", "width": h.width, "height": h.height,
                 "fps": str(h.fps), "frames": frames, "duration": float(frames / h.fps)}
    if fmt != "mkv":
        return [dict(index=0, **gvc_track)]
    import av

    try:
        return _matroska_tracks(av, path, gvc_track)
    except av.FFmpegError as e:
        warnings.append(f"other tracks not listed: FFmpeg cannot read the file ({e.strerror or e})")
        return [dict(index=0, **gvc_track)]


def _matroska_tracks(av, path, gvc_track: dict) -> list[dict]:
    out, found = [], False
    with av.open(str(path)) as c:
        for s in c.streams:
            t = {"index": s.index, "type": s.type, "language": s.language}
            cc = s.codec_context
            if s.type == "video" and cc is None and not found:
                t, found = dict(t, **gvc_track, fourcc="GVC1"), True
            elif cc is not None:
                t["codec"] = cc.name
                if s.type == "audio":
                    t.update(sample_rate=cc.sample_rate, channels=cc.channels, layout=cc.layout.name)
                elif s.type == "video":
                    t.update(width=cc.width, height=cc.height)
            if s.type == "attachment":
                t.update(filename=s.metadata.get("filename"), mimetype=s.metadata.get("mimetype"))
            if s.duration is not None and s.time_base and "duration" not in t and s.type != "attachment":
                t["duration"] = float(s.duration * s.time_base)
            out.append({k: v for k, v in t.items() if v is not None})
    return out


def probe(path) -> dict:
    with StreamReader(path) as r:
        h = r.header
        gops, damaged = [], []
        for u in r.units():
            if isinstance(u, GVCError):
                damaged.append({"after_gop": gops[-1]["gop"] if gops else None, "error": str(u)})
            else:
                gops.append(gop_entry(h, u))
        info = r.info
    frames = sum(g["frames"] for g in gops)
    duration = frames / h.fps if frames else Fraction(0)
    header = {k: (v.hex() if isinstance(v, bytes) else str(v) if k == "fps" else v) for k, v in vars(h).items()}
    size = info.file_bytes
    warnings = list(getattr(info, "warnings", []))
    return {
        "format": {"name": info.fmt, "file_bytes": size, "duration": float(duration), "frames": frames,
                   "bit_rate": round(8 * size / duration) if size and duration else None, "tags": info.tags},
        "tracks": tracks(path, info.fmt, h, frames, warnings),
        "header_bytes": len(h.to_bytes()), "header": header,
        "keyframes": sum(g["keyframe"] for g in gops),
        "gops": gops, "damaged": damaged, "warnings": warnings,
    }


def text(path, info: dict) -> str:
    h, f = info["header"], info["format"]
    rate = f"{f['bit_rate'] / 1000:.1f} kb/s" if f["bit_rate"] else "bit rate unknown"
    lines = [f"Input: {path} ({f['name']}, {f['file_bytes']} bytes, {f['duration']:.3f} s, {f['frames']} frames, {rate})"]
    for k, v in f["tags"].items():
        lines.append(f"  tag {k}: {v}")
    for t in info["tracks"]:
        what = {"video": lambda: f"{t.get('codec', '?')} {t.get('width')}x{t.get('height')}"
                         + (f" {t['fps']} fps, {t['frames']} frames" if t.get("codec") == "gvc" else ""),
                "audio": lambda: f"{t.get('codec')} {t.get('sample_rate')} Hz {t.get('layout')}",
                "attachment": lambda: f"{t.get('filename')} ({t.get('mimetype')})"}.get(t["type"], lambda: t.get("codec", "?"))()
        lang = f" [{t['language']}]" if t.get("language") else ""
        lines.append(f"  Track #{t['index']} {t['type']}: {what}{lang}")
    lines.append(f"  GVC v{h['version']} {h['mode'].upper()}, {h['width']}x{h['height']}, {h['fps']} fps, "
                 f"{h['frame_count'] or 'unknown'} frames, GOP {h['gop_length']} (overlap {h['gop_overlap']}), "
                 f"{info['keyframes']} keyframe GOP(s) of {len(info['gops'])}")
    lines.append(f"  prior {h['prior_id']} sha256 {h['prior_sha256'][:16]}…, steps {h['steps']} (ODE tail {h['ode_tail']}), "
                 f"γ {h['gamma']:g}, shift {h['shift']:g}, seed {h['seed']}, K {h['codebook_k']}, "
                 f"M {h['codebook_m']}/{h['codebook_m_tail']}, codebook span {h['codebook_span'] or 'whole GOP'}")
    lines.append(f"  arithmetic: transformer {h['compute_dtype']}, autoencoder {h['autoencoder_dtype']}, "
                 f"codebook {h['codebook_family']}")
    lines.append("  GOP       time (s)           frames      key    bytes  indices  anchors  residual")
    for g in info["gops"]:
        lines.append(f"  GOP {g['gop']:4d}  {g['start_time']:8.3f}-{g['end_time']:<8.3f}  {g['pts']:5d}+{g['frames']:<4d} "
                     f"{'key' if g['keyframe'] else '   '}  {g['bytes']:7d}  {g['index_bytes']:7d}  "
                     f"{g['anchor_bytes']:7d}  {g['residual_bytes']:8d}")
    for d in info["damaged"]:
        lines.append(f"  damaged unit after GOP {d['after_gop']}: {d['error']}")
    lines.extend(f"  warning: {w}" for w in info["warnings"])
    return "\n".join(lines)
