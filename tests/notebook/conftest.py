"""Notebook views are drawn from what the store holds, not how: one fresh SQLite store per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh, empty SQLite store (the views read through the same Store interface on every backend)."""
    return f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}"
