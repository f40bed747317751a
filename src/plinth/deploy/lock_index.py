"""Files of a package version on a package index (PEP 503 simple pages), with their hashes."""

from __future__ import annotations

import html.parser
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from plinth.core.errors import ConfigError

PYPI = "https://pypi.org/simple"
_TIMEOUT_S = 30.0
_OTHER = "pass the index to use with --index-url."


@dataclass(frozen=True)
class IndexFile:
    """One wheel or sdist of a package version as an index lists it."""

    filename: str
    url: str
    hashes: dict[str, str]

    @property
    def is_wheel(self) -> bool:
        """True for a wheel, False for an sdist."""
        return self.filename.endswith(".whl")


def index_files(name: str, version: str, indexes: Sequence[str]) -> tuple[str, list[IndexFile]] | None:
    """The first index in `indexes` that has hashed files of `name` at `version`, with those files.

    Returns:
        (index url, files), or None when no index lists a hashed file of that version.

    Raises:
        ConfigError: an index could not be read (unreachable, or not a simple index).
    """
    for index in indexes:
        page_url = f"{index.rstrip('/')}/{canonicalize_name(name)}/"
        page = _read_page(page_url)
        if page is None:
            continue
        files = [f for f in _links(page, page_url) if f.hashes and _is_version(f.filename, name, version)]
        if files:
            return index, files
    return None


def pip_indexes() -> list[str]:
    """The indexes pip is configured with here: its index-url (PyPI by default), then extras."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return [PYPI]
    main: list[str] = []
    extra: list[str] = []
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        urls = value.strip().strip("'\"").split()
        if key.endswith(".extra-index-url"):
            extra.extend(urls)
        elif key.endswith(".index-url"):
            main = urls[:1]
    return list(dict.fromkeys([*(main or [PYPI]), *extra]))


def _read_page(url: str) -> str | None:
    """The simple page at `url`; None when the index has no such project."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        folder = urllib.request.url2pathname(parts.path)
        for candidate in (os.path.join(folder, "index.html"), folder.rstrip(os.sep) + ".html"):
            if os.path.isfile(candidate):
                with open(candidate, encoding="utf-8") as file:
                    return file.read()
        return None
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return str(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ConfigError(f"The package index page {url} answered HTTP {exc.code}; {_OTHER}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The package index page {url} could not be read ({exc}); {_OTHER}") from exc


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _links(page: str, page_url: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(page)
    found = []
    for href in parser.hrefs:
        url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
        algorithm, _, digest = fragment.partition("=")
        filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        found.append(IndexFile(filename, url, {algorithm: digest} if algorithm and digest else {}))
    return found


def _is_version(filename: str, name: str, version: str) -> bool:
    try:
        if filename.endswith(".whl"):
            found_name, found_version, _, _ = parse_wheel_filename(filename)
        else:
            found_name, found_version = parse_sdist_filename(filename)
        return found_name == canonicalize_name(name) and found_version == Version(version)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return False
