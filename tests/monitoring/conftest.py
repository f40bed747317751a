"""Fixtures of the monitoring tests."""

from __future__ import annotations

from segmented import logs_in

__all__ = ["logs_in"]
