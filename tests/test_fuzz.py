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
