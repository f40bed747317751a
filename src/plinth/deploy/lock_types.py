"""The values of an environment lock: a package's origin, a lock, and what differs between two."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

_SEPARATORS = re.compile(r"[-_.]+")

OS_KEYS = ("system", "release", "machine", "id", "version_id", "pretty_name")
"""The facts a lock records of the operating system."""


def normalize(name: str) -> str:
    """A distribution name in PEP 503 form: `Scikit_Learn` -> `scikit-learn`."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class Source:
    """Where a package not taken from an index came from (PEP 610 `direct_url.json`).

    `kind` is "editable" or "directory" (a local folder), "vcs" (a checkout at `commit`)
    or "archive" (a wheel or sdist at `url`, with `archive_hash` as `sha256=HEX` when known).
    """

    kind: str
    url: str
    vcs: str | None = None
    commit: str | None = None
    requested_revision: str | None = None
    subdirectory: str | None = None
    archive_hash: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Source:
        """A source from its recorded dict; unknown keys are ignored."""
        optional = {
            key: str(data[key])
            for key in ("vcs", "commit", "requested_revision", "subdirectory", "archive_hash")
            if data.get(key) is not None
        }
        return cls(kind=str(data.get("kind")), url=str(data.get("url")), **optional)

    @property
    def local_path(self) -> str | None:
        """The folder or file a `file://` url names; None for other urls."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "file":
            return None
        return urllib.request.url2pathname(parts.path)

    @property
    def reference(self) -> str:
        """The PEP 508 direct reference: `git+URL@COMMIT#subdirectory=...`, or the url."""
        url = self.url
        if self.kind == "vcs" and self.vcs:
            url = f"{self.vcs}+{url}" + (f"@{self.commit}" if self.commit else "")
        if self.subdirectory:
            url += f"#subdirectory={self.subdirectory}"
        return url


@dataclass(frozen=True)
class Lock:
    """The environment a run ran in or a model version was registered from.

    `packages` maps every installed distribution (normalized name) to its exact version,
    `sources` those not installed from an index to their origin, and `libraries` a model
    version's flavor libraries (empty for a run). `complete` is False for a version
    registered before locks were recorded: then `packages` holds only its libraries.
    """

    python: str
    implementation: str
    os: dict[str, str | None]
    cuda: dict[str, str | None] | None
    packages: dict[str, str]
    sources: dict[str, Source] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    complete: bool = True

    @property
    def python_minor(self) -> str:
        """The Python major.minor version: "3.11"."""
        return ".".join(self.python.split(".")[:2])

    def to_dict(self) -> dict[str, Any]:
        """The lock as JSON-ready data (sources as dicts)."""
        data = asdict(self)
        data["python_minor"] = self.python_minor
        return data


@dataclass(frozen=True)
class Difference:
    """One way this interpreter differs from a lock.

    `kind` is "library" (a flavor library), "package", "python", "os" or "cuda"; `running`
    is None for a package not installed here. `blocking` marks what can stop a model from
    loading or predicting alike: a flavor library or the Python minor version.
    """

    kind: str
    name: str
    recorded: str | None
    running: str | None
    blocking: bool = False


Change = tuple[str | None, str | None]
"""A value before and after."""


@dataclass(frozen=True)
class LockDiff:
    """What changed from lock `a` to lock `b`; every field empty when they are identical."""

    python: Change | None = None
    implementation: Change | None = None
    os: dict[str, Change] = field(default_factory=dict)
    cuda: dict[str, Change] = field(default_factory=dict)
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, Change] = field(default_factory=dict)
    sources: dict[str, Change] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        """True when nothing differs."""
        return not any(getattr(self, name) for name in self.__dataclass_fields__)

    def to_dict(self) -> dict[str, Any]:
        """The differences as JSON-ready data, with `identical`."""
        return {**asdict(self), "identical": self.identical}
