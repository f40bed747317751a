"""Artifact records of runs, and the blobs every table references, as a part of `SqlStore`."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Sequence

from sqlalchemy import Connection, delete, func, insert, select

from plinth.core import entities as e
from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.validation import check_artifact_path
from plinth.store import schema as t
from plinth.store.base import ArtifactRecord
from plinth.store.sql.base import SqlBase

_IN_CHUNK = 1000
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _check_artifact_records(items: Sequence[ArtifactRecord], replace: str | None) -> None:
    """Refuse records a download could not write where it belongs, before anything is stored."""
    for path in [i.path for i in items] + ([replace] if replace else []):
        if check_artifact_path(path) != path:
            raise InvalidInput(
                f"Artifact path {path!r} is not in plain form; use {check_artifact_path(path)!r}."
            )
    for item in items:
        if not _DIGEST.fullmatch(item.digest) or item.size < 0:
            raise InvalidInput(
                f"Artifact {item.path!r} has no valid sha256 digest and size; store its blob first."
            )
    twice = sorted(path for path, n in collections.Counter(i.path for i in items).items() if n > 1)
    if twice:
        raise InvalidInput(f"Artifact path {twice[0]!r} is given twice; each file needs its own path.")


def artifacts_of(conn: Connection, key: int, run_id: str, prefix: str) -> list[e.Artifact]:
    """The artifacts of the run with row key `key`, at or under `prefix`, in path order."""
    query = select(t.artifacts).where(t.artifacts.c.run_key == key).order_by(t.artifacts.c.path)
    prefix = prefix.strip("/")
    found = []
    for r in conn.execute(query):
        if not prefix or r.path == prefix or r.path.startswith(prefix + "/"):
            found.append(e.Artifact(run_id, r.path, r.digest, r.size, r.created_ms))
    return found


class SqlArtifacts(SqlBase):
    """Artifact methods of SqlStore."""

    def add_artifacts(
        self, run_id: str, items: Sequence[ArtifactRecord], replace: str | None = None
    ) -> list[e.Artifact]:
        created = now_ms()
        _check_artifact_records(items, replace)

        def add(conn: Connection) -> list[e.Artifact]:
            key = self._run_key(conn, run_id)
            paths = [i.path for i in items]
            art = t.artifacts
            if replace:
                # a prefix compared as text: LIKE would fold case on some engines and read `_`, `%`
                under = func.substr(art.c.path, 1, len(replace) + 1) == replace + "/"
                conn.execute(delete(art).where(art.c.run_key == key, (art.c.path == replace) | under))
            rest = [p for p in paths if not replace or (p != replace and not p.startswith(replace + "/"))]
            for start in range(0, len(rest), _IN_CHUNK):  # bound parameters are limited per statement
                chunk = rest[start : start + _IN_CHUNK]
                conn.execute(delete(art).where(art.c.run_key == key, art.c.path.in_(chunk)))
            conn.execute(
                insert(t.artifacts),
                [
                    {
                        "run_key": key,
                        "path": i.path,
                        "digest": i.digest,
                        "size": i.size,
                        "created_ms": created,
                    }
                    for i in items
                ],
            )
            self._audit(conn, "artifact.log", "run", run_id, after=json.dumps(sorted(paths)[:50]))
            return [e.Artifact(run_id, i.path, i.digest, i.size, created) for i in items]

        return self._write("record artifacts", add) if items else []

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[e.Artifact]:
        def fetch(conn: Connection) -> list[e.Artifact]:
            return artifacts_of(conn, self._run_key(conn, run_id), run_id, prefix)

        return self._read("list artifacts", fetch)

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> int:
        wanted = sorted(set(paths))
        for path in wanted:
            if check_artifact_path(path) != path:
                raise InvalidInput(
                    f"Artifact path {path!r} is not in plain form; use {check_artifact_path(path)!r}."
                )

        def remove(conn: Connection) -> int:
            key = self._run_key(conn, run_id)
            art = t.artifacts
            removed: list[str] = []
            for start in range(0, len(wanted), _IN_CHUNK):  # bound parameters are limited per statement
                at = (art.c.run_key == key) & art.c.path.in_(wanted[start : start + _IN_CHUNK])
                removed += [r[0] for r in conn.execute(select(art.c.path).where(at))]
                conn.execute(delete(art).where(at))
            if removed:
                self._audit(conn, "artifact.delete", "run", run_id, before=json.dumps(sorted(removed)[:50]))
            return len(removed)

        return self._write("delete artifacts", remove) if wanted else 0

    def referenced_digests(self) -> set[str]:
        def fetch(conn: Connection) -> set[str]:
            used = {r[0] for r in conn.execute(select(t.artifacts.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.datasets.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.model_versions.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.model_files.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.prediction_segments.c.digest))}
            for column in (
                t.step_runs.c.result_digest,
                t.step_runs.c.log_digest,
                t.flow_runs.c.result_digest,
            ):
                used |= {r[0] for r in conn.execute(select(column).distinct()) if r[0]}
            return used

        return self._read("list referenced blobs", fetch)
