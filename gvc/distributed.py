"""Segment-parallel encoding and decoding on torch.distributed (one rank per GPU, or CPU processes).

Every rank loads the prior, plans the same GOPs and segments (gvc.segments) and codes its share;
rank 0 also collects the results in order and writes the one output stream (or video). Launch with
``torchrun`` (its rendezvous flags give several nodes) or ``gvc-dist --nproc N`` on one host.

Transport and liveness go through the job's c10d store (the TCPStore that torchrun's or rank 0's
rendezvous created), not through collectives: a result is a key rank 0 polls for, and while polling
it watches every rank's heartbeat and error keys, so a dead or failing rank ends the run within
``heartbeat_timeout`` seconds with a message naming the segment it was coding. Collectives (gloo on
CPU, NCCL on GPU) only agree on the start.

Encoding is byte-identical to ``gvc encode`` with the same input and settings on the same device
type (on CPU: the same torch thread count per process, which changes float rounding). Finished
segments are spilled by rank 0 to a directory beside the output; ``resume`` skips the segments found
there, and the output appears (atomically renamed) only once every segment is in.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from container.bitstream import GopUnit, UnitReader, frame_hash
from container.io import StreamReader, StreamWriter
from . import anchors as anchor_codec
from ._version import __version__
from .codec import GopCodec
from .config import CodecConfig, DecodeConfig
from .errors import BitstreamError, GVCError, ParameterError
from .gop import GopPlan, gop_plan, plan_gops
from .metrics import psnr
from .pipeline import DecodeEvent, DecodeReport, EncodeReport, GopRecord, Problem, settings_string
from .priors import load_prior
from .segments import Segment, assign_blocks, assign_round_robin, plan_segments, require_seekable

POLL_S = 0.05
HEARTBEAT_S = 1.0


class DistributedError(GVCError):
    """The run failed on some rank; the message names the rank and the segment."""


# -- the job: ranks, store, liveness -----------------------------------------------------------------

class Job:
    """This process's place in a torch.distributed job, and the store results and heartbeats use."""

    def __init__(self, device: str = "cpu", timeout_s: float = 300.0, heartbeat_timeout_s: float = 60.0):
        """timeout_s bounds the start (every rank must join within it); heartbeat_timeout_s the silence
        of a rank after that."""
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.device = device
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ParameterError("--device cuda: no CUDA device here")
            torch.cuda.set_device(self.local_rank)  # one rank per GPU
            self.device = f"cuda:{self.local_rank}"
        timeout = timedelta(seconds=timeout_s)
        store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
        if (rank, world) != (self.rank, self.world):  # pragma: no cover - env:// reads the same variables
            raise DistributedError(f"rendezvous gave rank {rank}/{world}, the environment {self.rank}/{self.world}")
        backend = "nccl" if self.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, store=dist.PrefixStore("pg", store), rank=rank, world_size=world, timeout=timeout)
        # torchrun's agent store outlives a restarted attempt: keys of this attempt get their own prefix.
        self.store = dist.PrefixStore(f"gvc/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        self._done = False  # this rank's share is in: rank 0 may end the job (and its store) any time now
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._done:
            try:
                self.store.add(f"hb/{self.rank}", 1)
                if self.rank and self.store.check(["end"]):
                    if self.store.get("end") == b"abort":
                        os._exit(1)  # rank 0 gave up and reported why; nothing left to do here
                    return
            except Exception:  # the store (rank 0 or the agent) is gone
                if self.rank and not self._done:
                    print(f"gvc-dist: error: rank {self.rank} lost contact with rank 0", file=sys.stderr)
                    os._exit(1)
                return
            time.sleep(HEARTBEAT_S)

    @contextmanager
    def guard(self, what: str):
        """A failure here ends the run: a worker publishes it for rank 0 to report, rank 0 tells the workers."""
        try:
            yield
        except Exception as e:
            if self.rank:
                self.fail(f"rank {self.rank} failed during {what}: {e}")
            else:
                self.end(ok=False)
            raise

    def share(self, key: str, value=None):
        """Rank 0's `value` (JSON) on every rank. Through the store: a collective would wait forever
        on a rank that died."""
        if self.rank == 0:
            self.store.set(key, json.dumps(value))
            return value
        while not self.store.check([key]):
            time.sleep(POLL_S)
        return json.loads(self.store.get(key))

    def working_on(self, what: str) -> None:
        self.store.set(f"at/{self.rank}", what)

    def fail(self, message: str) -> None:
        self.store.set(f"error/{self.rank}", message)

    def finished(self) -> None:
        self._done = True
        self.store.set(f"fin/{self.rank}", "1")

    def end(self, ok: bool) -> None:
        self.store.set("end", "ok" if ok else "abort")

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_share(job: Job, work: Callable[[], None], describe_error: Callable[[Exception], str]) -> threading.Thread | None:
    """Run this rank's share of the work; on rank 0 in a thread, since its main thread collects. A failure
    is published for rank 0 to report (and raised on the other ranks)."""

    def guarded():
        try:
            work()
            job.finished()
        except Exception as e:  # noqa: BLE001 - every failure must reach rank 0, bugs included
            job.fail(describe_error(e))
            if job.rank:
                raise

    if job.rank == 0:
        t = threading.Thread(target=guarded, daemon=True)
        t.start()
        return t
    guarded()
    return None


class Collector:
    """Rank 0: takes results from the store in order while watching every rank's errors and heartbeat."""

    def __init__(self, job: Job):
        self.job = job
        self._seen: dict[int, tuple[int, float]] = {}

    def check_ranks(self, waiting_for: str) -> None:
        s = self.job.store
        now = time.monotonic()
        for r in range(self.job.world):
            if s.check([f"error/{r}"]):
                raise DistributedError(s.get(f"error/{r}").decode())
            if r == 0 or s.check([f"fin/{r}"]):
                continue
            beats = s.add(f"hb/{r}", 0)
            last = self._seen.get(r)
            if last is None or last[0] != beats:
                self._seen[r] = (beats, now)
            elif now - last[1] > self.job.heartbeat_timeout_s:
                at = f"on {s.get(f'at/{r}').decode()}" if s.check([f"at/{r}"]) else "while starting up"
                raise DistributedError(f"rank {r} died or hangs (no heartbeat for {self.job.heartbeat_timeout_s:g} s) "
                                       f"{at}; {waiting_for} not received")

    def take(self, key: str, what: str) -> bytes:
        s = self.job.store
        while not s.check([key]):
            self.check_ranks(what)
            time.sleep(POLL_S)
        data = s.get(key)
        s.delete_key(key)
        return data

    def present(self, key: str) -> bytes | None:
        s = self.job.store
        return s.get(key) if s.check([key]) else None


# -- encoding --------------------------------------------------------------------------------------

@dataclass
class EncodeSetup:
    """What every rank derives identically from the input and settings."""
    config: CodecConfig
    codec: GopCodec
    plans: list[GopPlan]
    segments: list[Segment]
    tags: dict

    @property
    def header(self):
        return self.codec.header


def encode_setup(source, config: CodecConfig, *, device: str, segment_gops: int = 1) -> EncodeSetup:
    """`source`: a seekable frame source (ffmpeg_bridge.frame_range.FrameRange); `device` this rank's (cuda:N
    with one rank per GPU), config.device only its type."""
    info = source.info  # info.frames: what a single-process encode writes in the header (None: unknown)
    total = source.count()
    if total < 1:
        raise ParameterError("no frames to encode")
    prior = load_prior(config.prior, device=device, dtype=config.dtype, vae_dtype=config.vae_dtype)
    codec = GopCodec.for_encoding(prior, config, width=info.width, height=info.height, fps=info.fps,
                                  frame_count=info.frames, device=device)
    h = codec.header
    plans = plan_gops(total, h.gop_length, h.gop_overlap, codec.prior.geometry)
    segments = plan_segments(plans, config.mode, config.codes_first_anchor, segment_gops)
    tags = {"ENCODER": f"GVC {__version__}", "ENCODER_SETTINGS": settings_string(codec.config, codec.prior.name)}
    return EncodeSetup(config, codec, plans, segments, tags)


def encode_segment(setup: EncodeSetup, seg: Segment, source) -> tuple[list[bytes], list[dict]]:
    """The GOP units (bytes) and per-GOP PSNR of one segment, as a sequential encode makes them."""
    codec, plans = setup.codec, setup.plans
    frames = source.frames(seg.first_frame, seg.end_frame)
    prime(codec, seg, boundary_frame=frames[0])
    units, stats = [], []
    for g in seg.gops:
        p = plans[g]
        gop_frames = frames[p.first_frame - seg.first_frame:p.first_frame - seg.first_frame + p.real_frames]
        res = codec.encode(g, gop_frames)
        units.append(res.unit.to_bytes())
        stats.append({"psnr": sum(psnr(a, b) for a, b in zip(gop_frames[p.output_from:], res.frames)) / len(res.frames)})
    return units, stats


def prime(codec: GopCodec, seg: Segment, *, boundary_frame: np.ndarray | None = None,
          previous: GopUnit | None = None) -> None:
    """Give the codec what a sequential run hands to the segment's first GOP. Only FLF2V needs anything: the
    previous GOP's last anchor, decoded from `previous` (decoder) or coded again from the shared source
    frame (encoder: anchor coding is deterministic, so these are the same pixels). An I2V segment starts
    at a GOP with its own first anchor, a T2V GOP needs nothing."""
    h, frame = codec.header, None
    if h.mode == "flf2v" and seg.first_gop > 0:
        if previous is not None:
            last = next(a for a in previous.anchors if a.role == "last")
            cid, data = last.codec, last.data
        else:
            cfg = codec.config
            cid, data = anchor_codec.encode_anchor(boundary_frame, quality=cfg.anchor_quality,
                                                   **({} if cfg.anchor_codec is None else {"codec": cfg.anchor_codec}))
        frame = anchor_codec.decode_anchor(cid, data, size=(h.width, h.height))
    codec._hand_on(seg.first_gop - 1, frame)


class Spill:
    """Rank 0's per-segment spill directory: finished segments survive a failed run for ``resume``."""

    def __init__(self, path: Path, signature: bytes):
        self.path, self.signature = Path(path), signature

    def _name(self, seg: Segment) -> Path:
        return self.path / f"gops-{seg.first_gop:06d}-{seg.end_gop:06d}"

    def open(self, resume: bool) -> None:
        sig = self.path / "signature.bin"
        if resume and sig.is_file() and sig.read_bytes() != self.signature:
            raise ParameterError(f"spill directory {self.path} holds segments of another input or other settings: "
                                 f"remove it or drop --resume")
        if not resume:
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(sig, self.signature)

    def done(self, seg: Segment) -> bool:
        try:
            units = self.units(seg)
        except (OSError, GVCError):
            return False
        return len(units) == len(seg.gops)

    def units(self, seg: Segment) -> list[bytes]:
        with open(self._name(seg).with_suffix(".gvcu"), "rb") as f:
            units = list(UnitReader(f))
        if any(isinstance(u, BitstreamError) for u in units):
            raise BitstreamError(f"damaged spill file for {seg.describe()}")
        return units

    def stats(self, seg: Segment) -> list[dict]:
        return json.loads(self._name(seg).with_suffix(".json").read_text())

    def put(self, seg: Segment, units: list[bytes], stats: list[dict]) -> None:
        _write_atomic(self._name(seg).with_suffix(".json"), json.dumps(stats).encode())
        _write_atomic(self._name(seg).with_suffix(".gvcu"), b"".join(units))  # last: marks the segment done

    def clear(self) -> None:
        if not self.path.is_dir():
            return
        for f in self.path.iterdir():
            if f.name == "signature.bin" or (f.name.startswith("gops-") and f.suffix in (".gvcu", ".json", ".tmp")):
                f.unlink()
        if not any(self.path.iterdir()):
            self.path.rmdir()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pack(units: list[bytes], stats: list[dict]) -> bytes:
    head = json.dumps(stats).encode()
    return len(head).to_bytes(8, "big") + head + b"".join(units)


def _unpack(data: bytes) -> tuple[list[bytes], list[dict]]:
    n = int.from_bytes(data[:8], "big")
    return list(UnitReader(io.BytesIO(data[8 + n:]))), json.loads(data[8:8 + n])


def encode(job: Job, open_source: Callable[[], object], out, config: CodecConfig, *, spill_dir: Path,
           resume: bool = False, segment_gops: int = 1, fmt=None, tag_level: str = "lean",
           log: Callable[[str], None] = lambda s: None, timing: dict | None = None) -> EncodeReport | None:
    """Encode over all ranks of `job` the frames of `open_source()` (a seekable frame source, each rank
    opens its own: ffmpeg_bridge.frame_range.FrameRange); rank 0 writes `out` and returns the report (others: None).
    `timing` (rank 0) receives seconds spent in setup, own share, waiting, collecting and writing."""
    t0 = time.perf_counter()
    timing = {} if timing is None else timing
    with job.guard("setup"):
        src = open_source()
        setup = encode_setup(src, config, device=job.device, segment_gops=segment_gops)
        spill = Spill(spill_dir, setup.header.to_bytes() + json.dumps([setup.tags, len(setup.plans)]).encode())
        if job.rank == 0:
            spill.open(resume)
            todo = [s.index for s in setup.segments if not (resume and spill.done(s))]
            if resume:
                log(f"resume: {len(setup.segments) - len(todo)} of {len(setup.segments)} segments found in {spill.path}")
    todo = set(job.share("todo", todo if job.rank == 0 else None))
    pending = [s for s in setup.segments if s.index in todo]
    mine = assign_blocks(pending, job.world)[job.rank]
    current: list[Segment] = []

    def work():
        try:
            for seg in mine:
                current[:] = [seg]
                job.working_on(seg.describe())
                units, stats = encode_segment(setup, seg, src)
                job.store.set(f"seg/{seg.index}", _pack(units, stats))
        finally:
            src.close()

    def describe(e: Exception) -> str:
        where = current[0].describe() if current else "setup"
        return f"rank {job.rank} failed on {where}: {e}"

    t_setup = time.perf_counter()
    timing["setup_s"] = t_setup - t0
    worker = run_share(job, work, describe)
    if job.rank:
        return None
    collector = Collector(job)
    collect_s = 0.0
    try:
        for seg in pending:
            data = collector.take(f"seg/{seg.index}", seg.describe())
            t = time.perf_counter()
            spill.put(seg, *_unpack(data))
            collect_s += time.perf_counter() - t
    except DistributedError as e:
        for seg in pending:  # keep what the other ranks finished meanwhile
            data = collector.present(f"seg/{seg.index}")
            if data is not None and not spill.done(seg):
                spill.put(seg, *_unpack(data))
        kept = sum(spill.done(s) for s in setup.segments)
        job.end(ok=False)
        raise DistributedError(f"{e}; {kept} of {len(setup.segments)} segments kept in {spill.path}, "
                               f"rerun with --resume to finish") from None
    worker.join()
    t_in = time.perf_counter()
    report = write_stream(setup, spill, out, fmt, tag_level)
    report.seconds = time.perf_counter() - t0
    timing.update(coded_s=t_in - t_setup, collect_s=collect_s, write_s=time.perf_counter() - t_in,
                  segments=len(setup.segments), resumed=len(setup.segments) - len(pending))
    job.end(ok=True)
    spill.clear()
    return report


def write_stream(setup: EncodeSetup, spill: Spill, out, fmt, tag_level: str) -> EncodeReport:
    """The output stream from the spilled segments, written as a sequential encode writes it."""
    report = EncodeReport(setup.header)
    with StreamWriter(out, setup.header, tags=setup.tags, fmt=fmt, tag_level=tag_level) as writer:
        for seg in setup.segments:
            for data, stats in zip(spill.units(seg), spill.stats(seg)):
                unit = GopUnit.from_bytes(data)
                p = setup.plans[unit.gop_index]
                frames = p.real_frames - p.output_from
                nbytes = writer.write(unit, p.first_frame + p.output_from, frames)
                report.gops.append(GopRecord.of_unit(unit, report.frames, frames, nbytes, psnr=stats["psnr"]))
                report.bytes += nbytes
                report.frames += frames
                report.psnr_sum += stats["psnr"] * frames
    report.bytes += len(setup.header.to_bytes())
    return report


# -- decoding --------------------------------------------------------------------------------------

def decode(job: Job, source: str, writer_factory, config: DecodeConfig | None = None, *, segment_gops: int = 1,
           log: Callable[[str], None] = lambda s: None) -> DecodeReport | None:
    """Decode `source` over all ranks; rank 0 writes the frames in order through `writer_factory(header)`
    and returns what gvc.pipeline.decode_stream returns (others: None). Damaged and missing GOPs are
    concealed as a sequential decode conceals them: segments start only at intact units."""
    config = config or DecodeConfig()
    with job.guard("setup"):
        require_seekable(source, "stream")
        events: list[DecodeEvent] = []
        units: dict[int, GopUnit] = {}
        with StreamReader(source) as reader:
            h = reader.header
            for u in reader.units():
                if isinstance(u, BitstreamError):
                    where = "before GOP 0" if not units else f"after GOP {max(units)}"
                    events.append(DecodeEvent(Problem.CORRUPT_UNIT, None, f"damaged unit {where}: {u}"))
                elif u.gop_index not in units:
                    units[u.gop_index] = u
        codec = GopCodec(load_prior(config.prior or h.prior_id, device=job.device, header=h), h, device=job.device)
        geometry = codec.prior.geometry
        if h.frame_count:
            plans = plan_gops(h.frame_count, h.gop_length, h.gop_overlap, geometry)
        else:
            plans = [gop_plan(g, units[g].frame_count if g in units else h.gop_length, h.gop_length, h.gop_overlap,
                              geometry) for g in range(max(units, default=-1) + 1)]
        if not plans:
            raise BitstreamError("no GOP in the stream")

        def can_start(g: int) -> bool:
            # a cut needs the segment's first unit (and for FLF2V the previous one, which holds its first anchor)
            ok = g in units and (h.mode != "flf2v" or g - 1 in units)
            return ok and (h.mode != "i2v" or units[g].keyframe)

        segments = plan_segments(plans, h.mode, can_start, segment_gops)
    mine = assign_round_robin(segments, job.world)[job.rank]
    window = 2 * job.world * max(len(s.gops) for s in segments)  # GOPs of frames the store may hold
    current: list[Segment] = []

    def work():
        for seg in mine:
            current[:] = [seg]
            job.working_on(seg.describe())
            prime(codec, seg, previous=units.get(seg.first_gop - 1))
            for g in seg.gops:
                out, found = decode_gop(codec, g, units.get(g), config.verify)
                while job.store.add("written", 0) + window <= g:  # bounded memory: wait for rank 0 to catch up
                    time.sleep(POLL_S)
                job.store.set(f"gop/{g}", _pack_frames(out, found))

    def describe(e: Exception) -> str:
        where = current[0].describe() if current else "setup"
        return f"rank {job.rank} failed on {where}: {e}"

    worker = run_share(job, work, describe)
    if job.rank:
        return None
    collector = Collector(job)
    seg_of = {g: s for s in segments for g in s.gops}
    report = DecodeReport(h, events=events)
    writer = writer_factory(h)
    ok = False
    try:
        for g in range(len(plans)):
            out, found = _unpack_frames(collector.take(f"gop/{g}", f"GOP {g} of {seg_of[g].describe()}"), h.height, h.width)
            report.events += found
            for f in out:
                writer.write(f)
            report.frames += len(out)
            report.gops = g + 1
            job.store.add("written", 1)
        ok = True
    finally:
        job.end(ok=ok)
        writer.close()
    worker.join()
    return report


def decode_gop(codec: GopCodec, g: int, unit: GopUnit | None, verify: bool) -> tuple[list[np.ndarray], list[DecodeEvent]]:
    """GOP g's frames and what went wrong, as gvc.pipeline's sequential decoder has them."""
    if unit is None:
        return codec.conceal(g), [DecodeEvent(Problem.MISSING, g, f"GOP {g} missing: concealed")]
    try:
        out = codec.decode(unit)
    except BitstreamError as e:
        return codec.conceal(g), [DecodeEvent(Problem.UNDECODABLE, g, f"GOP {g}: {e}; concealed")]
    if verify and frame_hash(out) != unit.frame_hash:
        return out, [DecodeEvent(Problem.HASH_MISMATCH, g, f"GOP {g}: decoded frames differ from the encoder's "
                                                           "(frame hash mismatch)")]
    return out, []


def _pack_frames(frames: list[np.ndarray], events: list[DecodeEvent]) -> bytes:
    head = json.dumps([(e.problem.value, e.gop, e.message) for e in events]).encode()
    body = np.stack(frames).tobytes() if frames else b""
    return len(head).to_bytes(8, "big") + head + body


def _unpack_frames(data: bytes, height: int, width: int) -> tuple[list[np.ndarray], list[DecodeEvent]]:
    n = int.from_bytes(data[:8], "big")
    arr = np.frombuffer(data[8 + n:], np.uint8).reshape(-1, height, width, 3)
    return list(arr), [DecodeEvent(Problem(p), g, m) for p, g, m in json.loads(data[8:8 + n])]
