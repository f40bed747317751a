"""What the UI benchmark does in plinth's UI (selectors from the UI's contract)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import _ui_browser as ui
import _ui_data as data

RUNS_READY = (
    "(() => { const r = document.querySelector('table[data-testid=runs-table] tr[data-run-id]');"
    " return !!r && r.getBoundingClientRect().height > 0; })()"
)
PAGE_READY = "document.querySelector('main[data-page=%s][data-ready=true]')"
CHART_READY = "document.querySelector('[data-testid=chart][data-ready=true]')"
# Every chart on the compare page drawn (and at least one).
CHARTS_READY = (
    "(() => { const m = document.querySelector('main[data-page=compare][data-ready=true]');"
    " if (!m) return false;"
    " const c = m.querySelectorAll('[data-testid=chart]');"
    " return c.length > 0 && [...c].every((e) => e.dataset.ready === 'true'); })()"
)
COUNT_JS = "(document.querySelector('[data-testid=run-count]') || {}).textContent"
FIRST_JS = (
    "(document.querySelector('table[data-testid=runs-table] tr[data-run-id]') || {dataset: {}}).dataset.runId"
)
# The count of matches comes after the rows ("1-100 of …" until then).
COUNTED_JS = f"(() => {{ const t = {COUNT_JS}; return !!t && !t.includes('…'); }})()"
PREFIXES = ("/api/",)


def runs_url(base: str) -> str:
    return f"{base}/experiments/{quote(data.EXPERIMENT)}"


def runs_page(page: Any, base: str) -> float:
    """(a) the runs table of experiment `bench` with rows shown."""
    return ui.load(page, runs_url(base), RUNS_READY)


def filter_and_sort(page: Any, base: str) -> tuple[float, float, dict[str, Any]]:
    """(b) on a loaded runs page: type the filter, Enter, until the rows are the filtered ones;
    then click the sort column's header until the rows come back in that order."""
    ui.load(page, runs_url(base), RUNS_READY)
    page.wait_for_function(f"() => {COUNTED_JS}", timeout=ui.TIMEOUT_MS)
    before, first = page.evaluate(COUNT_JS), page.evaluate(FIRST_JS)
    page.fill("input[name=filter]", data.FILTER)
    # The newest run (`big`) has no params, so the filtered table starts with another row.
    filter_ms = ui.interact(
        page,
        "keydown",
        lambda: page.press("input[name=filter]", "Enter"),
        f"{PAGE_READY % 'runs'} && {COUNT_JS} !== {before!r} && {FIRST_JS} !== {first!r} && {RUNS_READY}",
    )
    # the match count, shown after the rows (a function: the page's CSP forbids eval of a string)
    page.wait_for_function(f"() => {COUNTED_JS}", timeout=ui.TIMEOUT_MS)
    count = page.evaluate(COUNT_JS)
    first = page.evaluate(FIRST_JS)
    header = f"th[data-column='{data.SORT_COLUMN}']"
    sort_ms = ui.interact(
        page,
        "click",
        lambda: page.click(header),
        f"{PAGE_READY % 'runs'} && {FIRST_JS} !== {first!r} && {RUNS_READY}",
    )
    checks = {"count": count, "sorted": _sorted_column(page), "url": page.url}
    return filter_ms, sort_ms, checks


def _sorted_column(page: Any) -> bool:
    """Whether the sort column's cells are in ascending order (a check, not timed)."""
    values = page.evaluate(
        """(col) => { const ths = [...document.querySelectorAll('table[data-testid=runs-table] th')];
        const i = ths.findIndex((t) => t.dataset.column === col);
        return [...document.querySelectorAll('table[data-testid=runs-table] tr[data-run-id]')]
          .map((r) => parseFloat(r.children[i].textContent)); }""",
        data.SORT_COLUMN,
    )
    nums = [v for v in values if v == v]  # NaN where a run has no value
    return bool(nums) and nums == sorted(nums)


def run_page(page: Any, base: str, run_id: str) -> float:
    """(c) the big run's metrics tab with its chart drawn."""
    return ui.load(page, f"{base}/runs/{run_id}?tab=metrics", CHART_READY)


def compare_page(page: Any, base: str, run_ids: list[str]) -> float:
    """(d) the compare view of the compare set with every chart drawn."""
    return ui.load(page, f"{base}/compare?runs={','.join(run_ids)}", CHARTS_READY)


def point_count(page: Any) -> str:
    """What the run page says under its chart (points logged, points drawn)."""
    return str(page.evaluate("(document.querySelector('[data-testid=point-count]') || {}).textContent"))


def chart_count(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('[data-testid=chart][data-ready=true]').length"))


class ServerLatency:
    """The API calls' latency as the server measured it (its /metrics histogram), summed over the
    timed repetitions only: `mark()` before one, `add()` after it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.total: dict[float, float] = {}
        self._start: dict[float, float] | None = None

    def _read(self) -> dict[float, float] | None:
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = httpx.get(f"{self.base}/metrics", timeout=30).text
        except httpx.HTTPError:
            return None
        buckets: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name != "plinth_server_request_latency_seconds_bucket":
                    continue
                if s.labels["route"].startswith("/api/"):
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
        return buckets

    def mark(self) -> None:
        self._start = self._read()

    def add(self) -> None:
        end, start = self._read(), self._start
        if end is None or start is None:
            return
        for le, count in end.items():
            self.total[le] = self.total.get(le, 0.0) + count - start.get(le, 0.0)

    def quantile_ms(self, q: float) -> float | None:
        from plinth.server.metrics import quantile

        got = quantile(self.total, q) if self.total else None
        return None if got is None else got * 1e3
