"""A short bounded fuzz run in CI (tools/fuzz.py): byte-level and payload mutation through the stream readers,
valid-CRC field mutation through the real decoder. None may raise anything but the codec's own errors, hang or
write without bound. (The long runs are reported in the closing notes of issue 14.)"""

from __future__ import annotations

from tools.fuzz import run


def test_short_fuzz_run_finds_nothing(tmp_path):
    s = run(("bytes", "payload", "fields"), 210, seed=1, timeout=10.0, findings=tmp_path)
    assert s["inputs"] == 210
    assert s["findings"] == {"crash": 0, "hang": 0, "runaway": 0}, s["signatures"]
    for mode in ("bytes", "payload", "fields"):  # every mutator reached its target and was refused at times
        assert s["by_mode"][mode].get("rejected", 0) + s["by_mode"][mode].get("damaged", 0) > 0, s["by_mode"]
    assert not list(tmp_path.iterdir())


def test_info_on_a_matroska_file_ffmpeg_cannot_open(tmp_path):
    """Found by the long run on a host with PyAV: bytes input #1102022 (seed 7) is a mutated .mkv that GVC's own
    reader recovers but FFmpeg refuses (EOFError). `gvc info` lists the GVC track and says why, no traceback."""
    from gvc.probe import probe
    from tools.fuzz import Fuzzer

    _, data = Fuzzer(seed=7, decode=False).make_input("bytes", 1102022)
    path = tmp_path / "in.mkv"
    path.write_bytes(data)
    info = probe(path)
    assert [t["codec"] for t in info["tracks"]] == ["gvc"]
    assert any("FFmpeg cannot read the file" in w for w in info["warnings"]), info["warnings"]
