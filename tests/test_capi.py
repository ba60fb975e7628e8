"""libgvc (gvc.capi): build the library with cffi's embedding mode, compile examples/c/gvc_decode.c with
the system C compiler, and check that its output equals the Python decoder's byte for byte (y4m and
RGB24), that damage is concealed and reported, and that errors come back as one line.

Skipped, with the reason, where there is no C compiler or no Python headers."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from container.unit_index import scan_units
from gvc.pipeline import decode_stream

ROOT = Path(__file__).resolve().parents[1]
GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]
# The C program runs without the virtual environment: the library finds gvc through its build-time paths.
# OMP_NUM_THREADS is passed on: the encoder's frame hashes hold for the thread count they were made with.
BARE_ENV = {k: os.environ[k] for k in ("PATH", "HOME", "OMP_NUM_THREADS") if k in os.environ}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    if not Path(sysconfig.get_paths()["include"], "Python.h").is_file():
        pytest.skip(f"no Python headers at {sysconfig.get_paths()['include']} (python3-dev)")
    build = tmp_path_factory.mktemp("libgvc")
    p = subprocess.run([sys.executable, "-m", "gvc.capi", "build", "-o", str(build)], capture_output=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr.decode()
    assert (build / "libgvc.so").is_file() and (build / "gvc.h").is_file()
    exe = build / "gvc_decode"
    p = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", f"-I{build}", str(ROOT / "examples/c/gvc_decode.c"),
                        f"-L{build}", "-lgvc", f"-Wl,-rpath,{build}", "-o", str(exe)], capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    return exe


@pytest.fixture(scope="module")
def stream(tmp_path_factory, _small_clip_y4m_master):
    """8 frames of carphone, I2V in 2 GOPs, as .gvc, and the Python decoder's y4m of it."""
    folder = tmp_path_factory.mktemp("capi")
    gvc, y4m = folder / "a.gvc", folder / "py.y4m"
    for cmd in (["encode", str(_small_clip_y4m_master), "-o", str(gvc)] + FAST, ["decode", str(gvc), "-o", str(y4m), "-q"]):
        p = subprocess.run(GVC + cmd, capture_output=True, cwd=ROOT)
        assert p.returncode == 0, p.stderr.decode()
    return gvc, y4m


def run_c(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, env=BARE_ENV, cwd="/")


def test_c_example_writes_the_python_decoders_y4m_byte_for_byte(example, stream, tmp_path):
    gvc, py_y4m = stream
    out = tmp_path / "c.y4m"
    p = run_c(example, gvc, out)
    assert p.returncode == 0, p.stderr.decode()
    assert b"8 frames, 0 problem(s)" in p.stderr
    assert out.read_bytes() == py_y4m.read_bytes()


def test_c_example_rgb24_equals_the_decoded_frames(example, stream, tmp_path):
    gvc, _ = stream
    out = tmp_path / "c.rgb"
    p = run_c(example, gvc, out, "--rgb")
    assert p.returncode == 0, p.stderr.decode()

    class Frames(list):
        write = list.append

        def close(self):
            pass

    frames = Frames()
    decode_stream(str(gvc), lambda h: frames)
    assert out.read_bytes() == b"".join(np.ascontiguousarray(f).tobytes() for f in frames)


def test_damaged_packet_is_concealed_and_reported(example, stream, tmp_path):
    gvc, py_y4m = stream
    data = bytearray(gvc.read_bytes())
    with open(gvc, "rb") as f:
        gop1 = next(e for e in scan_units(f) if e.gop_index == 1)
    data[gop1.offset + 40] ^= 0xFF  # inside the payload: the CRC fails
    bad = tmp_path / "bad.gvc"
    bad.write_bytes(bytes(data))
    out = tmp_path / "c.y4m"
    p = run_c(example, bad, out)
    assert p.returncode == 2, p.stderr.decode()
    assert b"CRC-32 mismatch" in p.stderr and b"8 frames" in p.stderr
    frame_bytes = 176 * 144 * 3 // 2 + len(b"FRAME\n")
    good = py_y4m.read_bytes()
    got = out.read_bytes()
    assert len(got) == len(good)
    head = good.index(b"FRAME")
    assert got[:head + 5 * frame_bytes] == good[:head + 5 * frame_bytes]  # GOP 0 intact
    assert got[head + 5 * frame_bytes:] != good[head + 5 * frame_bytes:]  # GOP 1 concealed


def test_errors_come_back_as_one_line(example, stream, tmp_path):
    gvc, _ = stream
    p = run_c(example, gvc, tmp_path / "x.y4m", "--prior", "gvc-wan-small-v1")
    assert p.returncode == 1
    assert b"stream was encoded with prior 'analytic-v1'" in p.stderr and b"Traceback" not in p.stderr
    garbage = tmp_path / "g.gvc"
    garbage.write_bytes(b"GVCU\x01\x04abcd\x00\x00\x00\x00")  # a 4-byte header unit, wrong CRC
    p = run_c(example, garbage, tmp_path / "y.y4m")
    assert p.returncode == 1 and b"CRC-32 mismatch" in p.stderr


def test_header_declares_what_the_library_exports(example):
    """gvc.h and the Python side agree: every declared function is defined by gvc.capi.embedded."""
    from gvc.capi.build import api_declarations
    import re

    declared = set(re.findall(r"\b(gvc_\w+)\s*\(", api_declarations()))
    nm = subprocess.run(["nm", "-D", "--defined-only", str(example.parent / "libgvc.so")], capture_output=True, text=True)
    if nm.returncode == 0:
        exported = set(re.findall(r" T (gvc_\w+)", nm.stdout))
        assert declared == exported
    source = (ROOT / "gvc/capi/embedded.py").read_text()
    assert declared == set(re.findall(r"def (gvc_\w+)\(", source))
