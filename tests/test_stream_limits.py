"""Hostile streams whose CRCs are valid (issue 14): a stream never picks a local folder as its prior, and
the decoder bounds the work and the output a stream asks for."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from container.bitstream import write_elementary
from container.io import StreamReader

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]
ZOO_FOLDER = Path(__file__).resolve().parents[1] / "gvc" / "zoo" / "gvc_tae_small"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def one_line_error(p) -> str:
    err = p.stderr.strip()
    assert p.returncode == 1 and "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def stream(tmp_path_factory, _small_clip_y4m_master) -> Path:
    """A 2-GOP I2V elementary stream from the analytic prior (8 frames, GOP 5 with overlap 1)."""
    out = tmp_path_factory.mktemp("limits") / "s.gvc"
    p = run(GVC + ["encode", str(_small_clip_y4m_master), "-o", str(out)] + FAST)
    assert p.returncode == 0, p.stderr
    return out


def rewrite(src: Path, dst: Path, units=None, **header_fields) -> Path:
    """Copy a stream with header fields replaced (and optionally other units), CRCs recomputed."""
    with StreamReader(str(src)) as r:
        header = dataclasses.replace(r.header, **header_fields)
        units = list(r.units()) if units is None else units
    with open(dst, "wb") as f:
        write_elementary(f, header, units)
    return dst


# -- 14.6: priors are the user's choice --------------------------------------------------------------------


def test_stream_cannot_pick_a_local_folder(tmp_path, stream):
    bad = rewrite(stream, tmp_path / "folder.gvc", prior_id=str(ZOO_FOLDER))
    out = tmp_path / "o.y4m"
    err = one_line_error(run(GVC + ["decode", str(bad), "-o", str(out)]))
    assert "not a registered prior" in err and "--prior PATH" in err
    assert not out.exists()
    # The user's choice decodes it, when its hash matches the header's (a folder passed with --prior PATH
    # whose hash differs is refused: tests/test_default_prior.py::test_other_weights_are_refused).
    p = run(GVC + ["decode", str(bad), "-o", str(out), "--prior", "analytic", "-q"])
    assert p.returncode == 0, p.stderr
