"""Locate and run the ``ffmpeg`` command-line tool.

Resolution order for the binary: the ``GVC_FFMPEG`` environment variable (a path or a name on PATH),
then ``ffmpeg`` on PATH, then the binary shipped in the ``imageio-ffmpeg`` wheel.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from gvc.errors import InputError

__all__ = ["ffmpeg_exe", "run_ffmpeg", "ffmpeg_version"]


@functools.lru_cache(maxsize=1)
def _default_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - imageio-ffmpeg is a hard dependency
        raise InputError("no ffmpeg found: not on PATH and imageio-ffmpeg is not installed") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:  # pragma: no cover - wheel without binary
        raise InputError(f"no ffmpeg found: {e}") from None


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run (``GVC_FFMPEG`` overrides, re-read on every call)."""
    override = os.environ.get("GVC_FFMPEG")
    if override:
        found = shutil.which(override)
        if not found:
            raise InputError(f"GVC_FFMPEG={override!r} is not an executable")
        return found
    return _default_exe()


# ffmpeg's summary lines add nothing to the line before them; "[in#0 @ 0x55...] " prefixes are noise.
_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-fA-F]+\]\s*")
_NOISE = {"Conversion failed!", "Exiting normally, received signal 2."}
_SUMMARY = re.compile(r"^Error (?:opening|while opening) (?:input|output) files?: (.*)$")
_OPENING = re.compile(r"^Error opening (?:input|output) file (.*?)\.?$")


def _reason(stderr: str) -> str:
    """The last meaningful line of ffmpeg's stderr, prefixes removed."""
    lines = [_PREFIX.sub("", ln.strip()) for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and ln not in _NOISE]
    if not lines:
        return "no error message"
    last = lines[-1]
    m = _SUMMARY.match(last)
    if m and len(lines) >= 2:
        prev = _OPENING.match(lines[-2])
        if prev:  # "Error opening input file x.mp4." + "Error opening input files: No such file"
            return f"cannot open {prev.group(1)}: {m.group(1)}"
    return last


def run_ffmpeg(args: list[str], *, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner [-nostdin] *args``, capturing stdout and stderr (bytes).

    Without ``input`` ffmpeg gets ``-nostdin`` and /dev/null as stdin. With ``check`` a non-zero exit
    raises :class:`InputError` carrying the last meaningful line of ffmpeg's stderr.
    """
    cmd = [ffmpeg_exe(), "-hide_banner"]
    if input is None:
        cmd.append("-nostdin")
    cmd += [str(a) for a in args]
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
        )
    except OSError as e:
        raise InputError(f"cannot run ffmpeg ({cmd[0]}): {e.strerror or e}") from None
    if check and proc.returncode != 0:
        reason = _reason(proc.stderr.decode("utf-8", "replace"))
        raise InputError(f"ffmpeg failed (exit {proc.returncode}): {reason}")
    return proc


@functools.lru_cache(maxsize=4)
def _version_of(exe: str) -> str:
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as e:
        raise InputError(f"cannot run ffmpeg ({exe}): {e.strerror or e}") from None
    first = proc.stdout.decode("utf-8", "replace").splitlines()[:1]
    m = re.match(r"ffmpeg version (\S+)", first[0]) if first else None
    if proc.returncode != 0 or not m:
        raise InputError(f"{exe} does not look like ffmpeg (-version failed)")
    return m.group(1)


def ffmpeg_version() -> str:
    """The version string of the ffmpeg binary, e.g. ``'n9.0.2-17-g2a571b6068-20260930'``."""
    return _version_of(ffmpeg_exe())
