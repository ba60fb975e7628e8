"""The prior digest cache (gvc.priors.hashcache): read once, reused while files are unchanged, a changed
byte is always detected (also with the size kept and the mtime put back), and the decoder then refuses."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wan_tiny import build_tiny_wan  # noqa: E402

from gvc.priors import hashcache  # noqa: E402
from gvc.priors.wan import WanPrior, hash_folder_files  # noqa: E402

SUBS = ["transformer", "vae"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GVC_CACHE_DIR", str(d))
    monkeypatch.delenv("GVC_HASH_CACHE", raising=False)
    return d


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_wan(tmp_path_factory.mktemp("wanh") / "t2v", mode="t2v", with_text_encoder=False)


def _files(root: Path) -> list[Path]:
    return sorted((p for s in SUBS for p in (root / s).iterdir() if p.suffix == ".safetensors" or p.name == "config.json"),
                  key=lambda p: p.relative_to(root).as_posix())


def _flip_byte_keep_size(path: Path, offset: int = -7) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _count_reads(monkeypatch) -> list:
    calls = []
    real = hashcache.sha256_files
    monkeypatch.setattr(hashcache, "sha256_files", lambda files: calls.append(len(files)) or real(files))
    return calls


def test_second_call_reads_nothing_and_matches_full_hash(model, tmp_path, cache, monkeypatch):
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    calls = _count_reads(monkeypatch)
    a = hash_folder_files(copy, SUBS)
    assert a == hashcache.sha256_files(_files(copy))  # the cache does not change what is hashed
    calls.clear()
    assert hash_folder_files(copy, SUBS) == a
    assert calls == []  # served from the cache file, no weight bytes read
    entry = json.loads((cache / hashcache.CACHE_FILE).read_text())["entries"][str(copy.resolve())]
    assert entry["sha256"] == a.hex() and len(entry["files"]) == len(_files(copy))


@pytest.mark.parametrize("restore_mtime", [False, True])
def test_changed_byte_same_size_is_detected(model, tmp_path, cache, monkeypatch, restore_mtime):
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    a = hash_folder_files(copy, SUBS)
    f = copy / "transformer" / "diffusion_pytorch_model.safetensors"
    st = os.stat(f)
    _flip_byte_keep_size(f)
    if restore_mtime:  # put the old mtime back: the ctime still moves
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert os.stat(f).st_size == st.st_size
    calls = _count_reads(monkeypatch)
    b = hash_folder_files(copy, SUBS)
    assert calls, "the changed file was not re-read"
    assert b != a and b == hashcache.sha256_files(_files(copy))


def test_unwritable_or_disabled_cache_still_hashes(model, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("GVC_CACHE_DIR", str(blocker / "sub"))  # cannot be created
    a = hash_folder_files(model, SUBS)
    assert a == hashcache.sha256_files(_files(model))
    monkeypatch.setenv("GVC_HASH_CACHE", "0")
    calls = _count_reads(monkeypatch)
    assert hash_folder_files(model, SUBS) == a and calls


def test_damaged_cache_file_is_ignored(model, cache):
    cache.mkdir(parents=True)
    (cache / hashcache.CACHE_FILE).write_text("{not json")
    assert hash_folder_files(model, SUBS) == hashcache.sha256_files(_files(model))


def test_decoder_refuses_stream_after_weights_change(model, tmp_path, cache):
    from fractions import Fraction

    from gvc.codec import GopCodec
    from gvc.config import CodecConfig
    from gvc.errors import GVCError

    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    cfg = CodecConfig(mode="t2v", quality=2, gop_length=5, steps=3, ode_tail=1).validate()
    enc = GopCodec.for_encoding(WanPrior.from_pretrained(copy), cfg, width=32, height=32, fps=Fraction(25), frame_count=5)
    header = enc.header
    assert GopCodec(WanPrior.from_pretrained(copy), header) is not None  # same weights: accepted (cached digest)
    f = copy / "vae" / "diffusion_pytorch_model.safetensors"
    st = os.stat(f)
    _flip_byte_keep_size(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(GVCError, match="prior"):
        GopCodec(WanPrior.from_pretrained(copy), header)
