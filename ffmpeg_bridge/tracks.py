"""The audio and subtitle tracks of an input file, demuxed with PyAV packet for packet, to be carried
untouched beside the GVC video; and the ffmpeg remux that puts them back beside a decoded video.

    with TrackCopier("phone.mp4", codecs=container.matroska.COPYABLE_CODECS) as src:
        src.tracks          # [SourceTrack]: what the Matroska writer needs to declare each track
        src.skipped         # ["audio track 2 (pcm_mulaw): ..."]: tracks the destination cannot hold
        for p in src.packets():  # SourcePacket, in the input's order, presentation times in ns
            ...
    mux_tracks("decoded.mp4", "x.mkv", "out.mp4")  # video of the first, audio/subtitles of the second

Only I/O lives here: which codecs a container can hold and how it declares them is the container's
business (``container.matroska.COPYABLE_CODECS``, ``copied_track``); the layer above wires the two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import av.error

from gvc.errors import InputError

from .ffmpeg import run_ffmpeg

_MOV_EXTS = (".mp4", ".mov", ".m4v")  # text subtitles must become mov_text there


@dataclass
class SourceTrack:
    """An audio or subtitle stream as FFmpeg describes it."""
    kind: str  # "audio" or "subtitle"
    codec: str  # FFmpeg's codec name ("aac", "opus", "subrip", ...)
    extradata: bytes = b""
    language: str | None = None
    title: str | None = None
    sample_rate: int | None = None  # audio
    channels: int | None = None  # audio
    sample_bytes: int | None = None  # audio: bytes per sample of the sample format
    priming: int = 0  # audio: encoder delay in samples at sample_rate (AAC 1024), as FFmpeg reports it


@dataclass
class SourcePacket:
    track: int  # index into TrackCopier.tracks
    data: bytes
    time_ns: int  # presentation time, from the first video frame of the input (FFmpeg's, so priming < 0)
    duration_ns: int | None  # subtitles only (an audio packet's length is in its payload)
    keyframe: bool


class TrackCopier:
    """The audio/subtitle tracks of one input whose codec is in ``codecs`` (``tracks``), and their packets
    (``packets()``). Times count from the input's first video frame: that frame becomes frame 0 of the
    re-coded video the tracks are carried beside."""

    def __init__(self, path, codecs):
        try:
            self._c = av.open(str(path))
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"cannot read the tracks of {path}: {e}") from None
        self.tracks: list[SourceTrack] = []
        self.skipped: list[str] = []
        self._streams = []
        for s in self._c.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            name = s.codec_context.name if s.codec_context is not None else "unknown"
            if name not in codecs:
                self.skipped.append(f"{s.type} track {s.index} ({name})")
                continue
            self._streams.append(s)
            self.tracks.append(_track_of(s, name))
        video = self._c.streams.video
        start = video[0].start_time if video else None
        self.origin_ns = round(start * Fraction(video[0].time_base) * 10**9) if start is not None else 0

    def packets(self) -> Iterator[SourcePacket]:
        """Every packet of ``tracks``, in the input's order."""
        if not self._streams:
            return
        index = {s.index: i for i, s in enumerate(self._streams)}
        try:
            for p in self._c.demux(self._streams):
                if p.size == 0 or p.pts is None:
                    continue
                tb = Fraction(p.time_base)
                duration = round(p.duration * tb * 10**9) if p.duration and p.stream.type == "subtitle" else None
                yield SourcePacket(track=index[p.stream.index], data=bytes(p),
                                   time_ns=round(p.pts * tb * 10**9) - self.origin_ns, duration_ns=duration,
                                   keyframe=bool(p.is_keyframe))
        except av.error.FFmpegError as e:
            raise InputError(f"cannot demux the audio/subtitle tracks: {e}") from None

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> "TrackCopier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _track_of(s, name: str) -> SourceTrack:
    t = SourceTrack(kind=s.type, codec=name, extradata=bytes(s.codec_context.extradata or b""),
                    language=s.metadata.get("language"), title=s.metadata.get("title"))
    if s.type == "audio":
        cc = s.codec_context
        t.sample_rate, t.channels, t.sample_bytes = cc.sample_rate, cc.layout.nb_channels, cc.format.bytes
        t.priming = cc.delay or 0
    return t


def mux_tracks(video, tracks_from, out) -> None:
    """Write ``out``: the video stream of ``video`` and every audio and subtitle stream of ``tracks_from``,
    packets copied and timestamps kept as they are (``-copyts``; ``-avoid_negative_ts disabled`` keeps the
    audio priming before frame 0 instead of shifting one side). Text subtitles become mov_text in MP4/MOV,
    the only subtitle codec those hold."""
    args = ["-copyts", "-i", os.fspath(video), "-i", os.fspath(tracks_from), "-map", "0:v", "-map", "1:a?",
            "-map", "1:s?", "-c", "copy"]
    if os.path.splitext(os.fspath(out))[1].lower() in _MOV_EXTS:
        args += ["-c:s", "mov_text"]
    run_ffmpeg(args + ["-avoid_negative_ts", "disabled", "-y", os.fspath(out)])
