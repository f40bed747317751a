"""Timing pages in headless Chromium driven by Playwright (Debian's /usr/bin/chromium).

Every figure is read inside the page, from `performance.now()`:

- a page load: from the navigation's start (the document's time origin) to the first animation
  frame at which the page's "ready" condition holds (polled every frame, so within one frame);
- an interaction: from the key or click event itself (a capturing listener stamps it) to the
  first frame at which the condition holds.

API calls are collected with `page.on("requestfinished")`: a call's time is its `responseEnd`
(request start to last byte, as the browser saw it).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from _ui_data import EXPERIMENT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 120_000

# Wraps a condition (a JS expression) so that the first time it holds is kept in window.__uiT1.
_STAMP = (
    "() => { if (window.__uiT1) return true;"
    " if (%s) { window.__uiT1 = performance.now(); return true; } return false; }"
)


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class ApiLog:
    """Durations (ms) of the API calls pages made, by path without the query."""

    prefixes: tuple[str, ...]
    calls: list[tuple[str, float]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    recording: bool = True

    def attach(self, page: Any) -> None:
        page.on("requestfinished", self._finished)
        page.on("requestfailed", lambda req: self.failed.append(req.url) if self._api(req.url) else None)

    def _api(self, url: str) -> str | None:
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        return path if path.startswith(self.prefixes) else None

    def _finished(self, req: Any) -> None:
        path = self._api(req.url)
        if path is None or not self.recording:
            return
        timing = req.timing
        end = timing.get("responseEnd", -1)
        if end is not None and end >= 0:
            self.calls.append((path, float(end)))

    def p95(self) -> float | None:
        return percentile([ms for _, ms in self.calls], 0.95)

    def slowest(self, n: int = 3) -> list[tuple[str, float]]:
        """The `n` routes with the highest p95, with it."""
        by: dict[str, list[float]] = {}
        for path, ms in self.calls:
            by.setdefault(_route(path), []).append(ms)
        ranked = sorted(((p, percentile(v, 0.95) or 0.0) for p, v in by.items()), key=lambda t: -t[1])
        return ranked[:n]


def _route(path: str) -> str:
    """A path with its ids and names folded, so calls group by route (`/ui/runs/*/metric`)."""
    return "/".join("*" if _is_name(p) else p for p in path.split("/"))


def _is_name(part: str) -> bool:
    """Whether a path segment names something (an id, a number, the experiment) rather than a route."""
    return part.isdigit() or (len(part) >= 16 and part.isalnum()) or part == EXPERIMENT


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def load(page: Any, url: str, ready_js: str) -> float:
    """Open `url` in `page`; ms from navigation start until `ready_js` holds."""
    page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
    page.wait_for_function(_STAMP % ready_js, polling="raf", timeout=TIMEOUT_MS)
    return float(page.evaluate("window.__uiT1"))


def interact(page: Any, event: str, act: Callable[[], None], done_js: str) -> float:
    """Do `act` (which fires DOM `event`); ms from that event until `done_js` holds.

    `done_js` may read `window.__uiBefore`, set by `snapshot_js` callers beforehand.
    """
    page.evaluate(
        """(ev) => { window.__uiT0 = null; window.__uiT1 = null;
        document.addEventListener(ev, () => { window.__uiT0 = performance.now(); },
                                  {capture: true, once: true}); }""",
        event,
    )
    act()
    page.wait_for_function(_STAMP % done_js, polling="raf", timeout=TIMEOUT_MS)
    t0, t1 = page.evaluate("[window.__uiT0, window.__uiT1]")
    if t0 is None:
        raise RuntimeError(f"the {event} event was not seen")
    return float(t1) - float(t0)


def new_page(context: Any, api: ApiLog, errors: list[str]) -> Any:
    """A fresh page whose API calls go to `api`, and console errors and 4xx/5xx answers to `errors`."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    api.attach(page)
    page.on("console", lambda msg: errors.append(msg.text[:300]) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)[:300]))
    page.on(
        "response", lambda r: errors.append(f"HTTP {r.status} {r.url[:200]}") if r.status >= 400 else None
    )
    return page
