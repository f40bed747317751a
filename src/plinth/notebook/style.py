"""The look of plinth's notebook outputs: one small stylesheet, scoped under `.plinth`.

Colours are the web UI's (`plinth/ui/static/style.css`): ink, muted text, lines, the accent
blue and the status colours of its badges and graph. Every output carries its own copy of the
block, since a notebook renders (and a reader copies) outputs one at a time; every selector
starts with `.plinth`, so nothing leaks into the notebook around it. The output is a light card
with its own background, so it stays readable under a dark notebook theme.
"""

from __future__ import annotations

from plinth.notebook.html import esc

INK = "#1d2430"
MUTED = "#667085"
LINE = "#d9dee6"
ACCENT = "#2f6fb3"
GRID = "#edf0f4"

STATUS_STROKE = {
    "FINISHED": "#1b7f3b",
    "FAILED": "#b42318",
    "CRASHED": "#b42318",
    "RUNNING": "#175cd3",
    "PENDING": "#175cd3",
    "KILLED": "#b54708",
    "CANCELLED": "#b54708",
    "CACHED": "#98a2b3",
}
"""Outline (and text) colour of a node by status, as the web UI's graph draws it."""
STATUS_FILL = {
    "FINISHED": "#ecfdf3",
    "FAILED": "#fef3f2",
    "CRASHED": "#fef3f2",
    "RUNNING": "#eff8ff",
    "PENDING": "#eff8ff",
    "KILLED": "#fffaeb",
    "CANCELLED": "#fffaeb",
    "CACHED": "#f2f4f7",
}
"""Fill of a node by status."""

CSS = f"""
.plinth {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 13px; line-height: 1.45; color: {INK}; background: #fff; border: 1px solid {LINE};
  border-radius: 8px; padding: 8px 12px; margin: 2px 0; max-width: 100%; overflow-x: auto; }}
.plinth .head {{ display: flex; align-items: center; gap: 8px; flex-wrap: wrap; font-size: 14px; }}
.plinth .head .title {{ font-weight: 600; }}
.plinth h4 {{ font-size: 13px; font-weight: 600; margin: 10px 0 4px; color: {INK}; }}
.plinth a {{ color: {ACCENT}; text-decoration: none; }}
.plinth a:hover {{ text-decoration: underline; }}
.plinth code {{ font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }}
.plinth pre {{ white-space: pre-wrap; margin: 2px 0; color: #b42318; }}
.plinth .muted {{ color: {MUTED}; }}
.plinth .bad {{ color: #b42318; font-weight: 600; }}
.plinth table {{ border-collapse: collapse; margin: 2px 0 6px; width: auto; font-size: inherit; }}
.plinth th, .plinth td {{ padding: 3px 10px; border-bottom: 1px solid {GRID}; text-align: left;
  white-space: nowrap; max-width: 360px; overflow: hidden; text-overflow: ellipsis; vertical-align: middle; }}
.plinth th {{ background: #f1f4f8; font-weight: 600; font-size: 12px; color: {INK}; }}
.plinth td.num, .plinth th.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.plinth tr.drifted td:first-child {{ color: #b42318; font-weight: 600; }}
.plinth dl.kv {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }}
.plinth dl.kv dt {{ color: {MUTED}; }}
.plinth dl.kv dd {{ margin: 0; word-break: break-word; }}
.plinth details > summary {{ cursor: pointer; color: {ACCENT}; margin: 2px 0; }}
.plinth ul.tree {{ list-style: none; padding-left: 16px; margin: 2px 0; border-left: 1px solid {LINE}; }}
.plinth ul.tree.root {{ border-left: none; padding-left: 0; }}
.plinth ul.tree li {{ margin: 2px 0; }}
.plinth .rel {{ color: {MUTED}; font-style: italic; }}
.plinth .badge {{ display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 11.5px;
  font-weight: 600; letter-spacing: .02em; border: 1px solid currentColor; }}
.plinth .badge.ok {{ color: #1b7f3b; background: #ecfdf3; }}
.plinth .badge.bad {{ color: #b42318; background: #fef3f2; }}
.plinth .badge.warn {{ color: #b54708; background: #fffaeb; }}
.plinth .badge.run {{ color: #175cd3; background: #eff8ff; }}
.plinth .badge.muted {{ color: {MUTED}; background: #f2f4f7; }}
.plinth img.chart {{ display: block; max-width: 100%; height: auto; }}
.plinth img.chart.inline {{ display: inline-block; vertical-align: middle; }}
.plinth .charts {{ display: flex; flex-wrap: wrap; gap: 6px 14px; }}
.plinth progress {{ width: 220px; vertical-align: middle; }}
"""
"""The stylesheet every output carries (a few hundred bytes compressed)."""


def document(kind: str, body: str, **data: str) -> str:
    """`body` in the styled `.plinth` container, tagged `data-plinth=kind` (and `data-*` from `data`).

    The data attributes name what the output shows (a run id, a model ref) for tests and
    for scripts that read saved notebooks.
    """
    attributes = "".join(f' data-{esc(key.replace("_", "-"))}="{esc(value)}"' for key, value in data.items())
    return f'<style>{CSS}</style><div class="plinth" data-plinth="{esc(kind)}"{attributes}>{body}</div>'
