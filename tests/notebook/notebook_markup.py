"""A strict reader of the HTML the notebook views draw (a helper of the tests in this folder).

Charts reach the notebook as `<img>` elements whose `src` is an SVG document in a base64
`data:` URI. The reader decodes each one, checks it is a well-formed SVG document, and reads its
elements as well, right after the image's own, as if the SVG were inline.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
SVG_URI = "data:image/svg+xml;base64,"
SVG_NS = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Chart:
    """One chart image: its attributes (alt, width, height, class) and its SVG document, parsed."""

    attrs: dict[str, str]
    svg: ET.Element

    @property
    def alt(self) -> str:
        return self.attrs.get("alt", "")

    def all(self, tag: str) -> list[ET.Element]:
        """The SVG's elements named `tag` (without the namespace), in document order."""
        return list(self.svg.iter(SVG_NS + tag))


def decoded(src: str) -> ET.Element:
    """The root of the SVG document an image's `data:` URI holds (asserting it is one)."""
    assert src.startswith(SVG_URI), src[:60]
    root = ET.fromstring(base64.b64decode(src[len(SVG_URI) :], validate=True))
    assert root.tag == SVG_NS + "svg"
    return root


class Markup(HTMLParser):
    """Reads HTML strictly: every element closed in order, no script, no event handler attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.charts: list[Chart] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "style":
            return
        self.text.append(data)

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "script" or any(k.startswith("on") for k in found):
            self.problems.append(f"<{tag}> runs script")
        if tag == "svg":
            self.problems.append("an inline <svg> (JupyterLab's sanitizer drops it)")
        self.elements.append((tag, found))
        if tag == "img" and found.get("src", "").startswith("data:image/svg"):
            root = decoded(found["src"])
            self.charts.append(Chart(found, root))
            self.elements.extend((e.tag.removeprefix(SVG_NS), dict(e.attrib)) for e in root.iter())


def checked(html: str) -> Markup:
    """Parse `html`, asserting it is well formed and script free, with no inline <svg>, and that
    each chart image holds a valid SVG document and has an alt text."""
    assert "<script" not in html.lower()
    markup = Markup()
    markup.feed(html)
    markup.close()
    assert markup.problems == [] and markup.open == [], (markup.problems, markup.open)
    assert all(chart.alt for chart in markup.charts), "a chart without an alt text"
    return markup


def charts(html: str) -> list[Chart]:
    """The chart images of `html`, in order, each with its SVG document parsed."""
    return checked(html).charts


def text_of(html: str) -> str:
    """The visible text of `html` (style sheets left out), whitespace collapsed."""
    return " ".join(" ".join(checked(html).text).split())


def with_data(html: str, tag: str, **data: str) -> list[dict[str, str]]:
    """The attributes of every `tag` element whose data-* attributes include `data`."""
    wanted = {f"data-{k.replace('_', '-')}": v for k, v in data.items()}
    return [a for t, a in checked(html).elements if t == tag and wanted.items() <= a.items()]


class _Tables(HTMLParser):
    """Rows of the tables named `data-table`: each row's data-key and the text of its cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self._table: list[str] = []
        self._row: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table.append(found.get("data-table", ""))
            self.tables.setdefault(self._table[-1], [])
        elif tag == "tr" and self._table:
            self._row = (found.get("data-key", ""), [])
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row[1]:
                self.tables[self._table[-1]].append(self._row)
            self._row = None
        elif tag == "table" and self._table:
            self._table.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, name: str) -> list[tuple[str, list[str]]]:
    """(data-key, cell texts) of each body row of every table called `name`, in order."""
    reader = _Tables()
    reader.feed(html)
    return reader.tables.get(name, [])


def table(html: str, name: str) -> dict[str, list[str]]:
    """The rows of the tables called `name` by their data-key."""
    return dict(table_rows(html, name))
