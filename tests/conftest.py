"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# The golden regress-lm fixture lives in shared/ beside the repository root, not inside it.
REGRESS_LM_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "regress_lm"


@pytest.fixture(scope="session")
def regress_lm_fixtures() -> Path:
    """The folder with regress-lm's golden files (tokenizer_golden.json, golden.json, checkpoints)."""
    if not REGRESS_LM_FIXTURES.is_dir():
        pytest.fail(f"regress-lm fixtures not found at {REGRESS_LM_FIXTURES}; check out shared/ beside the repo")
    return REGRESS_LM_FIXTURES
