"""Hash a prior's weight files once: a digest cache verified by each file's identity (path, size, times).

The stream header pins a prior by the SHA-256 of its weight files (``hash_folder_files``); reading 6-60 GB
on every encode and decode cost 6-60 s (issue 15). The digest is stored in a small JSON cache together
with ``(relative path, size, mtime_ns, ctime_ns, inode, device)`` of every file it covers; a later call
reuses it only when every file still has exactly those values (a ``stat`` per file, microseconds).

A write to a file changes its mtime and its ctime; restoring the mtime afterwards (``touch -d``,
``os.utime``) still changes the ctime, which only the kernel sets. So a changed file is always re-hashed,
unless someone edits the filesystem under the kernel.

Location: ``$GVC_CACHE_DIR``, else ``$XDG_CACHE_HOME/gvc``, else ``~/.cache/gvc``; file ``weights-sha256.json``.
``GVC_HASH_CACHE=0`` turns the cache off. An unreadable, damaged or unwritable cache is ignored (the digest
is then computed, and kept in memory for the life of the process).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

CACHE_FILE = "weights-sha256.json"
CACHE_VERSION = 1
MAX_ENTRIES = 64  # folders remembered; the oldest entries go first

_lock = threading.Lock()
_memory: dict[str, dict] = {}  # fallback when the cache file cannot be written


def cache_dir() -> Path:
    env = os.environ.get("GVC_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gvc"


def cache_enabled() -> bool:
    return os.environ.get("GVC_HASH_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def file_identity(path: Path, root: Path) -> list:
    """What must not change for a cached digest to stay valid: [relpath, size, mtime_ns, ctime_ns, ino, dev]."""
    st = os.stat(path)
    return [path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_files(files: list[Path]) -> bytes:
    """SHA-256 over the concatenated bytes of ``files`` in the given order, streamed 16 MiB at a time."""
    h = hashlib.sha256()
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
    return h.digest()


def _load() -> dict:
    try:
        data = json.loads((cache_dir() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _store(entries: dict) -> bool:
    """Atomically replace the cache file; False when the directory is not writable."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".weights-sha256.", dir=d)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f)
            os.replace(tmp, d / CACHE_FILE)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError:
        return False
    return True


def cached_sha256(root: Path, files: list[Path]) -> tuple[bytes, bool]:
    """(sha256_files(files), whether it came from the cache). ``files`` lie under ``root``, in hashing order."""
    root = Path(os.path.abspath(root))
    files = [Path(os.path.abspath(f)) for f in files]
    ident = [file_identity(f, root) for f in files]
    key = root.as_posix()
    if cache_enabled():
        with _lock:
            entry = _load().get(key) or _memory.get(key)
        if isinstance(entry, dict) and entry.get("files") == ident and isinstance(entry.get("sha256"), str):
            try:
                return bytes.fromhex(entry["sha256"]), True
            except ValueError:
                pass
    digest = sha256_files(files)
    if ident != [file_identity(f, root) for f in files]:
        return digest, False  # a file changed while it was read: do not remember this digest
    if cache_enabled():
        entry = {"files": ident, "sha256": digest.hex()}
        with _lock:
            entries = _load()
            entries.pop(key, None)
            entries[key] = entry
            while len(entries) > MAX_ENTRIES:
                entries.pop(next(iter(entries)))
            if not _store(entries):
                _memory[key] = entry
    return digest, False


__all__ = ["cache_dir", "cache_enabled", "cached_sha256", "file_identity", "sha256_files"]
