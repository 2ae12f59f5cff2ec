"""Where things are, for every test wherever it sits in the tree mirroring the package."""

from __future__ import annotations

from pathlib import Path

#: tests/
TESTS = Path(__file__).resolve().parents[1]
#: The repository root (README.md, models/, tasks/, satbench/).
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
#: Tiny model cards for fast tests (SATBENCH_MODEL_CARDS).
CARDS = FIXTURES / "cards"
TINY_CARD = CARDS / "satdino-test-tiny.yaml"
SEG_FIXTURES = FIXTURES / "seg"
LEADERBOARD_FIXTURES = FIXTURES / "leaderboard"
#: The bundled real UC Merced subset.
UCM_MINI = REPO / "satbench" / "data" / "bundled" / "ucm-mini"
