"""Evaluation, benchmark and training tools (``python -m tools.NAME``)."""

import os
from pathlib import Path

# The evaluation clips: $GVC_CLIPS_DIR, else ../shared/clips beside the checkout (as tests/conftest.py).
CLIPS_DIR = Path(os.environ.get("GVC_CLIPS_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "clips")
