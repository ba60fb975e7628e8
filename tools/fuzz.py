"""Fuzz GVC's stream readers and decoder with mutated streams; count anything that is not the codec's own error.

    python -m tools.fuzz [--mode bytes,payload,fields] [-n 1000] [--seed 0] [--json FILE] [--findings DIR]
    python -m tools.fuzz --atheris [-- atheris/libFuzzer options]   # coverage-guided, where atheris is installed

Seeds are the conformance streams (tests/conformance/v3_*, every mode, .gvc and .mkv). Three mutators:

* ``bytes``: byte-level mutation of a whole file (bit flips, interesting bytes, inserted, deleted and
  duplicated chunks, truncation, splices of two seeds), read the way ``gvc info`` reads it (every unit
  parsed and checked against the header). Mostly stopped by the CRCs and the EBML parser: fast.
* ``payload``: the same byte mutations inside one unit's payload, with the unit's CRC recomputed, so they
  reach the payload parsers (sequence header, GOP unit, anchors, residual, index sets); read as ``bytes``.
* ``fields``: valid-CRC *field* mutation: one syntax element of one unit is set to a hostile value
  (0, 1, all ones, 2^k ± 1, far out of range, NaN, another enum value, another length of bytes), the unit
  rebuilt with its ``construct`` structure and a correct CRC, then units dropped, repeated or swapped at
  times; the result goes through the real decoder (``gvc decode`` with the stream's analytic prior) under a
  cap on output bytes.

Outcomes: ``ok`` (exit 0), ``rejected`` (exit 1, one-line GVCError), ``damaged`` (exit 2: concealed and
reported), and the findings: ``crash`` (any other exception), ``hang`` (over ``--timeout``), ``runaway``
(decoded output over its cap). Findings are saved to ``--findings`` with their tracebacks; a run exits 1 when
there is any. A per-process address-space limit (``--max-memory``) turns allocation bombs into crashes
instead of a swapping machine. Every input is reproducible from ``--seed`` and its number (``--replay N``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from tools import emit_json


ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "conformance"
MODES = ("bytes", "payload", "fields")
FINDINGS = ("crash", "hang", "runaway")
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE)
OUTPUT_CAP = 64 << 20  # decoded bytes one fuzz input may write (the seeds decode to ~12 KB)


class Hang(BaseException):
    """Raised by the alarm: an input ran over its time limit (BaseException, so no handler swallows it)."""


def _on_alarm(signum, frame):
    raise Hang()


# -- seeds ---------------------------------------------------------------------------------------------


def load_seeds(folder: Path = SEEDS) -> list[tuple[str, bytes]]:
    seeds = [(p.name, p.read_bytes()) for p in sorted(folder.glob("v3_*")) if p.suffix in (".gvc", ".mkv")]
    if not seeds:
        raise SystemExit(f"fuzz: no seed streams in {folder} (python -m tools.make_conformance writes them)")
    return seeds


def split_units(data: bytes) -> list[tuple[str, bytes]]:
    """An elementary stream's units as (type, payload); a Matroska file's from its CodecPrivate and blocks."""
    from container.bitstream import parse_unit, UnitReader

    if data[:4] == b"GVCU":
        return [parse_unit(u) for u in UnitReader(io.BytesIO(data))]
    from container.matroska import MatroskaReader

    mkv = MatroskaReader(io.BytesIO(data))
    return [parse_unit(mkv.codec_private)] + [parse_unit(p.data) for p in mkv.packets()]


# -- byte-level mutation -------------------------------------------------------------------------------


def mutate_bytes(rng: random.Random, data: bytes, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(8)
        n = len(b)
        if n == 0:
            b += rng.randbytes(rng.randint(1, 16))
            continue
        at = rng.randrange(n)
        if op == 0:
            b[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[at] = rng.choice(INTERESTING_BYTES)
        elif op == 2:
            b[at] = rng.randrange(256)
        elif op == 3:
            b[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16, 200)))
        elif op == 4:
            del b[at:at + rng.choice((1, 2, 4, 16, 200))]
        elif op == 5:
            del b[at:]
        elif op == 6:
            end = min(n, at + rng.randint(1, 64))
            dst = rng.randrange(n)
            b[dst:dst] = b[at:end]
        else:
            cut = rng.randrange(len(other) + 1)
            b[at:] = other[cut:]
    return bytes(b)


def mutate_payload(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Byte mutations inside one unit's payload, CRC recomputed, as an elementary stream."""
    from container.bitstream import build_unit

    units = split_units(data)
    i = rng.randrange(len(units))
    kind, payload = units[i]
    units[i] = (kind, mutate_bytes(rng, payload, payload))
    return b"".join(build_unit(k, p) for k, p in units)


# -- valid-CRC field mutation --------------------------------------------------------------------------


def _leaves(node, path=()):
    """(path, value) of every scalar of a parsed construct Container (RawCopy offsets and private keys skipped)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("_") or k in ("offset1", "offset2", "length") and "data" in node:
                continue
            if isinstance(v, (dict, list)):
                yield from _leaves(v, path + (k,))
            else:
                yield path + (k,), v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                yield from _leaves(v, path + (i,))
            else:
                yield path + (i,), v


def _hostile_int(rng: random.Random, v: int) -> int:
    return rng.choice([0, 1, 2, 3, v - 1, v + 1, 2 * v, v // 2, 255, 256, 1023, 1025, 65535, 65536, 8192, 8193,
                       (1 << 24) - 1, 1 << 24, (1 << 31) - 1, (1 << 32) - 1, rng.randrange(1 << 32), rng.randrange(300)])


def _hostile_value(rng: random.Random, v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, str) and type(v) is not str:  # a construct enum value: another defined or undefined number
        return rng.choice([0, 1, 2, 3, 4, 5, 7, 255])
    if isinstance(v, int):
        return max(0, _hostile_int(rng, v))
    if isinstance(v, float):
        return rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e30, v * 2, v + 1, 1e-30])
    if isinstance(v, str):
        return rng.choice(["", "x" * 300, "analytic", "/etc", "../" * 20, "\u00e9" * 10, v + "x"])
    if isinstance(v, (bytes, bytearray)):
        b = bytes(v)
        return rng.choice([b"", b[: len(b) // 2], b + rng.randbytes(rng.choice((1, 7, 300))), rng.randbytes(len(b)),
                           mutate_bytes(rng, b, b)])
    return v


def _set(root, path, value) -> None:
    node = root
    for i, k in enumerate(path[:-1]):
        if isinstance(node, dict) and "data" in node and "value" in node:
            # a RawCopy: building takes "data" when present; keep the side that was mutated
            node.pop("data" if k == "value" else "value", None)
        node = node[k]
    node[path[-1]] = value


def mutate_fields(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """One hostile field value in one unit, rebuilt with its structure and a valid CRC; sometimes units
    dropped, repeated or swapped too. Falls back to payload mutation when a value does not build."""
    import construct as cs

    from container.bitstream import GopUnitSyntax, SequenceHeaderSyntax, build_unit

    units = split_units(data)
    for _ in range(20):
        i = rng.randrange(len(units))
        kind, payload = units[i]
        syntax = SequenceHeaderSyntax if kind == "sequence_header" else GopUnitSyntax
        try:
            tree = syntax.parse(payload)
        except cs.ConstructError:
            break
        leaves = list(_leaves(tree))
        path, value = rng.choice(leaves)
        _set(tree, path, _hostile_value(rng, value))
        try:
            units[i] = (kind, syntax.build(tree))
        except (cs.ConstructError, ValueError, TypeError, OverflowError, UnicodeError, struct.error):
            continue
        break
    else:
        return mutate_payload(rng, data, other)
    r = rng.random()
    if r < 0.1 and len(units) > 2:
        del units[rng.randrange(1, len(units))]
    elif r < 0.2:
        units.append(units[rng.randrange(len(units))])
    elif r < 0.3 and len(units) > 2:
        a, b = rng.sample(range(1, len(units)), 2)
        units[a], units[b] = units[b], units[a]
    return b"".join(build_unit(k, p) for k, p in units)


MUTATORS = {"bytes": mutate_bytes, "payload": mutate_payload, "fields": mutate_fields}


# -- targets -------------------------------------------------------------------------------------------


def read_target(path: str) -> int:
    """What ``gvc info`` does: open, parse the header and every unit against it, print."""
    from gvc.cli import main

    return main(["info", path, "--json"])


def decode_target(path: str, out: str) -> int:
    """The real decoder: ``gvc decode`` with the prior the stream names (the seeds' is analytic), its output held
    to 1000 frames (--max-frames: a stream declaring more is refused, as the limit is there for)."""
    from gvc.cli import main

    return main(["decode", path, "-o", out, "-q", "--max-frames", "1000"])


class Fuzzer:
    def __init__(self, seed: int = 0, timeout: float = 5.0, findings: Path | None = None, work: Path | None = None,
                 decode: bool = True):
        self.seed, self.timeout, self.findings, self.decode = seed, timeout, findings, decode
        self.seeds = load_seeds()
        self._tmp = tempfile.TemporaryDirectory(prefix="gvc-fuzz-", dir=work or ("/dev/shm" if os.path.isdir("/dev/shm") else None))
        self.work = Path(self._tmp.name)
        self.counts = {m: Counter() for m in MODES}
        self.signatures: dict[str, dict] = {}
        self._handlers = (signal.signal(signal.SIGALRM, _on_alarm),
                          signal.signal(signal.SIGXFSZ, signal.SIG_IGN))  # past RLIMIT_FSIZE a write fails with EFBIG
        self._warm_up()

    def _warm_up(self) -> None:
        """Import everything (torch takes seconds) and check that every seed reads and decodes cleanly, with
        no timer: a timer going off inside an import would leave half-initialised modules behind. Without the
        fields mode nothing decodes, so neither torch nor PyAV is needed (the byte-level runs go anywhere)."""
        for name, data in self.seeds:
            path, out = self.work / name, self.work / "warm.y4m"
            path.write_bytes(data)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                rc = (read_target(str(path)), decode_target(str(path), str(out)) if self.decode else 0)
            if rc != (0, 0):
                raise SystemExit(f"fuzz: seed {name} does not read and decode cleanly: {err.getvalue().strip()}")
            path.unlink()

    def make_input(self, mode: str, n: int) -> tuple[str, bytes]:
        rng = random.Random(f"{self.seed}:{mode}:{n}")
        name, data = rng.choice(self.seeds)
        other = rng.choice(self.seeds)[1]
        try:
            return name, MUTATORS[mode](rng, data, other)
        except Exception:  # a mutator failing on its own output is the fuzzer's problem, not a finding
            return name, mutate_bytes(rng, data, other)

    def run_one(self, mode: str, n: int) -> str:
        seed_name, data = self.make_input(mode, n)
        ext = ".mkv" if data[:4] == b"\x1a\x45\xdf\xa3" else ".gvc"
        path, out = self.work / f"in{ext}", self.work / "out.y4m"
        path.write_bytes(data)
        sink = io.StringIO()
        error = None
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                rc = decode_target(str(path), str(out)) if mode == "fields" else read_target(str(path))
            outcome = {0: "ok", 1: "rejected", 2: "damaged"}.get(rc, "crash")
        except Hang:
            outcome = "hang"
        except BaseException as e:  # noqa: BLE001 - anything but the codec's own errors is what we look for
            if isinstance(e, KeyboardInterrupt):
                raise
            outcome, error = "crash", e
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if mode == "fields" and out.exists():
            if out.stat().st_size >= OUTPUT_CAP:
                outcome = "runaway"
            out.unlink()
        self.counts[mode][outcome] += 1
        if outcome in FINDINGS:
            self._record(mode, n, seed_name, data, outcome, error)
        return outcome

    def _record(self, mode, n, seed_name, data, outcome, error) -> None:
        if error is not None:
            tb = traceback.extract_tb(error.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if str(ROOT) in f.filename), "?")
            sig = f"{type(error).__name__} at {where}"
            detail = "".join(traceback.format_exception(error))[-3000:]
        else:
            sig, detail = outcome, ""
        entry = self.signatures.setdefault(sig, {"outcome": outcome, "count": 0, "first": f"{mode} #{n} from {seed_name}",
                                                 "message": str(error)[:300] if error else ""})
        entry["count"] += 1
        if self.findings is not None and entry["count"] == 1:
            self.findings.mkdir(parents=True, exist_ok=True)
            stem = f"{mode}-{hashlib.sha1(sig.encode()).hexdigest()[:10]}"
            (self.findings / f"{stem}.bin").write_bytes(data)
            (self.findings / f"{stem}.txt").write_text(f"{sig}\n{mode} #{n} (seed {self.seed}) from {seed_name}\n\n{detail}")

    def summary(self, seconds: float) -> dict:
        total = sum(sum(c.values()) for c in self.counts.values())
        found = {k: sum(c[k] for c in self.counts.values()) for k in FINDINGS}
        return {"inputs": total, "seconds": round(seconds, 1), "seed": self.seed, "timeout_s": self.timeout,
                "by_mode": {m: dict(c) for m, c in self.counts.items() if c}, "findings": found,
                "non_codec_exceptions": found["crash"], "hangs": found["hang"], "runaways": found["runaway"],
                "signatures": self.signatures}

    def close(self) -> None:
        signal.signal(signal.SIGALRM, self._handlers[0])
        signal.signal(signal.SIGXFSZ, self._handlers[1])
        self._tmp.cleanup()


def run(modes=("bytes", "payload", "fields"), n: int = 200, *, seed: int = 0, timeout: float = 5.0,
        findings: Path | None = None, progress_every: int = 0, start: int = 0) -> dict:
    """Run ``n`` inputs, spread round-robin over ``modes``; return the summary (see :meth:`Fuzzer.summary`)."""
    fz = Fuzzer(seed, timeout, findings, decode="fields" in modes)
    t0 = time.perf_counter()
    try:
        for i in range(start, start + n):
            fz.run_one(modes[i % len(modes)], i)
            if progress_every and (i + 1 - start) % progress_every == 0:
                s = fz.summary(time.perf_counter() - t0)
                print(json.dumps({k: s[k] for k in ("inputs", "seconds", "by_mode", "findings")}), file=sys.stderr, flush=True)
        return fz.summary(time.perf_counter() - t0)
    finally:
        fz.close()


def atheris_main(argv: list[str]) -> int:
    """Coverage-guided fuzzing of the byte-level read path (container/ and the header/unit checks)."""
    try:
        import atheris
    except ImportError:
        print("fuzz: atheris is not installed (pip install atheris; it builds on Linux x86-64 for CPython <= 3.11)",
              file=sys.stderr)
        return 1
    with atheris.instrument_imports(include=["container", "gvc.cli"]):
        import container.bitstream  # noqa: F401
        import container.io  # noqa: F401
        import container.matroska  # noqa: F401
        import gvc.cli  # noqa: F401
    fz = Fuzzer(0, 5.0, ROOT / "fuzz-findings")
    for name, data in fz.seeds:  # libFuzzer starts from a corpus folder: the conformance streams
        corpus = fz.work / "corpus"
        corpus.mkdir(exist_ok=True)
        (corpus / name).write_bytes(data)

    def one(data: bytes) -> None:
        path = fz.work / ("in.mkv" if data[:4] == b"\x1a\x45\xdf\xa3" else "in.gvc")
        path.write_bytes(data)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            read_target(str(path))  # a GVCError becomes an exit status; anything else propagates to atheris

    atheris.Setup([sys.argv[0], *argv, str(fz.work / "corpus")], one)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--mode", default="bytes,payload,fields", help="comma-separated: bytes, payload, fields (default all)")
    p.add_argument("-n", "--inputs", type=int, default=1000, help="inputs to run (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first input number (with -n 1: replay that input)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per input before it counts as a hang (default 5)")
    p.add_argument("--max-memory", type=float, default=4.0, metavar="GIB", help="address-space limit (default 4 GiB)")
    p.add_argument("--findings", type=Path, help="save each new finding's input and traceback here")
    p.add_argument("--json", type=Path, help="write the summary here too")
    p.add_argument("--progress-every", type=int, default=0, metavar="N", help="print counts every N inputs")
    p.add_argument("--atheris", action="store_true", help="coverage-guided run of the byte-level path (needs atheris)")
    a, rest = p.parse_known_args(argv)
    limit = int(a.max_memory * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_CAP, OUTPUT_CAP))
    if a.atheris:
        return atheris_main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    modes = tuple(a.mode.split(","))
    if any(m not in MODES for m in modes):
        p.error(f"--mode takes {', '.join(MODES)}")
    s = run(modes, a.inputs, seed=a.seed, timeout=a.timeout, findings=a.findings, progress_every=a.progress_every,
            start=a.start)
    emit_json(s, a.json)
    return 1 if any(s["findings"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
