"""The audio and subtitle tracks of an input file, demuxed with PyAV packet for packet, for the Matroska
writer to carry untouched beside the GVC video (``container.matroska.MkvTrack`` / ``write_block``).

    with TrackCopier("phone.mp4") as src:
        with MatroskaWriter(out, ..., tracks=src.tracks) as w:
            for index, block in src.blocks():          # in the input's order, timed in ns
                w.write_block(w.tracks[index].number, block.data, block.time_ns, block.duration_ns,
                              block.keyframe)

Only codecs with a Matroska mapping that needs no rewriting of the packets are copied (AAC, Opus, Vorbis,
FLAC, MP3, AC-3, E-AC-3, PCM, SubRip, ASS/SSA, WebVTT); any other track is listed in ``skipped``.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Iterator

import av
import av.error

from container.matroska import TRACK_TYPE_AUDIO, TRACK_TYPE_SUBTITLE, MkvBlock, MkvTrack
from gvc.errors import InputError

# FFmpeg codec name -> Matroska CodecID, for codecs whose packets and extradata Matroska stores as they are.
MATROSKA_CODEC_IDS = {
    "aac": "A_AAC", "opus": "A_OPUS", "vorbis": "A_VORBIS", "flac": "A_FLAC", "mp3": "A_MPEG/L3",
    "mp2": "A_MPEG/L2", "ac3": "A_AC3", "eac3": "A_EAC3", "pcm_s16le": "A_PCM/INT/LIT",
    "pcm_s24le": "A_PCM/INT/LIT", "pcm_f32le": "A_PCM/FLOAT/IEEE",
    "subrip": "S_TEXT/UTF8", "srt": "S_TEXT/UTF8", "ass": "S_TEXT/ASS", "ssa": "S_TEXT/SSA", "webvtt": "S_TEXT/WEBVTT",
}
OPUS_SEEK_PRE_ROLL_NS = 80_000_000  # what FFmpeg writes (RFC 7845: 80 ms of pre-roll after a seek)


class TrackCopier:
    """The copyable audio/subtitle tracks of one input (``tracks``), and their packets (``blocks()``)."""

    def __init__(self, path):
        try:
            self._c = av.open(str(path))
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"cannot read the tracks of {path}: {e}") from None
        self.tracks: list[MkvTrack] = []
        self.skipped: list[str] = []
        self._streams = []
        for s in self._c.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            name = s.codec_context.name if s.codec_context is not None else "unknown"
            codec_id = MATROSKA_CODEC_IDS.get(name)
            if codec_id is None:
                self.skipped.append(f"{s.type} track {s.index} ({name}): no Matroska mapping without rewriting")
                continue
            self._streams.append(s)
            self.tracks.append(_track_of(s, codec_id))

    def blocks(self) -> Iterator[tuple[int, MkvBlock]]:
        """(index into ``tracks``, block) for every packet of those tracks, in the input's order."""
        if not self._streams:
            return
        index = {s.index: i for i, s in enumerate(self._streams)}
        # FFmpeg's demuxers give the priming samples negative times (pts - CodecDelay); Matroska stores
        # them from the CodecDelay on, so the times are shifted back by it.
        delay = {s.index: t.codec_delay or 0 for s, t in zip(self._streams, self.tracks)}
        try:
            for p in self._c.demux(self._streams):
                if p.size == 0 or p.pts is None:
                    continue
                tb = Fraction(p.time_base)
                duration = round(p.duration * tb * 10**9) if p.duration and p.stream.type == "subtitle" else None
                yield index[p.stream.index], MkvBlock(track=0, data=bytes(p), time_ns=round(p.pts * tb * 10**9) + delay[p.stream.index],
                                                       duration_ns=duration, keyframe=bool(p.is_keyframe))
        except av.error.FFmpegError as e:
            raise InputError(f"cannot demux the audio/subtitle tracks: {e}") from None

    def close(self) -> None:
        self._c.close()

    def __enter__(self) -> "TrackCopier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _track_of(s, codec_id: str) -> MkvTrack:
    extradata = bytes(s.codec_context.extradata or b"")
    t = MkvTrack(type=TRACK_TYPE_AUDIO if s.type == "audio" else TRACK_TYPE_SUBTITLE, codec_id=codec_id,
                 codec_private=extradata, language=s.metadata.get("language"), name=s.metadata.get("title"))
    if s.type == "audio":
        t.sampling_frequency = float(s.codec_context.sample_rate)
        t.channels = s.codec_context.layout.nb_channels
        if codec_id.startswith("A_PCM"):
            t.bit_depth = 8 * s.codec_context.format.bytes
        priming = s.codec_context.delay  # encoder delay in samples (AAC 1024, Opus pre-skip)
        if codec_id == "A_OPUS" and len(extradata) >= 12:
            priming = struct.unpack_from("<H", extradata, 10)[0]  # OpusHead pre-skip, in 48 kHz samples
            t.seek_pre_roll = OPUS_SEEK_PRE_ROLL_NS
        if priming:
            rate = 48000 if codec_id == "A_OPUS" else s.codec_context.sample_rate
            t.codec_delay = round(Fraction(priming * 10**9, rate))
    return t
