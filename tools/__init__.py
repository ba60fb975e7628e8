"""Evaluation, benchmark and training tools (``python -m tools.NAME``)."""

import os
from pathlib import Path

# The evaluation clips: $GVC_CLIPS_DIR, else ../shared/clips beside the checkout (as tests/conftest.py).
CLIPS_DIR = Path(os.environ.get("GVC_CLIPS_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "clips")


def emit_json(result, path=None, *, echo: bool = True) -> str:
    """The tools' one way to report: ``result`` as indented JSON on stdout (unless ``echo`` is False) and, given a
    ``path``, in that file too (its folder made). Returns the text."""
    import json

    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text
