"""The lineage view: the graph around a dataset, run, model version or request, ready to draw.

`plinth.governance.lineage.lineage` walks the store (the same call as the team server's
`lineage` computation, with subject ids and label values only for Right.RAW). This view names
each node's kind and a short name for the picture, and the page it opens where it has one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter

from plinth.core.access import Right
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.refs import split_version
from plinth.governance.lineage import LineageGraph, lineage, phrase
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import READ, needs, view_router
from plinth.store.base import Store

Node = tuple[str, str]

ROOTS = {
    "dataset": ("dataset_version",),
    "run": ("run", "flow_run"),
    "model": ("model_version",),
    "request": ("prediction",),
}
"""The kinds a page asks for, and the node types each may resolve to."""
KINDS = {
    "dataset_version": "dataset",
    "run": "run",
    "flow_run": "flow run",
    "model_version": "model",
    "deployment": "deployment",
    "predictions": "predictions",
    "prediction": "request",
    "labels": "labels",
    "label": "label",
    "blob": "artifact",
    "dataset_input": "dataset input",
    "receipt": "erasure receipt",
}
"""How each node type reads on the page."""
DIRECTIONS = ("both", "up", "down")


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/lineage`."""
    router = view_router()

    @router.get("/lineage", openapi_extra=needs(Right.READ))
    def graph(kind: str, id: str, direction: str = "both", ctx: RequestContext = READ) -> dict[str, Any]:
        """The lineage graph of one entity: nodes with kind, name and page, and labelled edges.

        Raises (answered by the app's error table): InvalidInput for an unknown kind or
        direction, or an id of another kind; NotFound for an id the workspace does not hold.
        """
        if direction not in DIRECTIONS:
            raise InvalidInput(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r:.40}.")
        store = ctx.store
        ref = reference(store, kind, id.strip())
        personal = ctx.principal.may(ctx.workspace, Right.RAW)
        found = lineage(store, ref, direction, personal=personal)
        _check_root(found.root, kind, id)
        return {"kind": kind, "id": id, "direction": direction, "personal": personal, **shaped(store, found)}

    return router


def reference(store: Store, kind: str, ident: str) -> str:
    """The lineage reference of `ident` read as `kind`; a bare model or dataset name is its newest version.

    Raises:
        InvalidInput: an unknown kind, or an empty id.
        NotFound: no such request id, dataset or model.
    """
    if kind not in ROOTS:
        raise InvalidInput(f"kind must be one of {', '.join(ROOTS)}, got {kind!r:.40}.")
    if not ident:
        raise InvalidInput(f"Give the id of the {kind} whose lineage to show.")
    if kind == "request" and store.find_prediction(ident) is None:
        raise NotFound(f"No logged request {ident!r:.80}; a request id is in the answer of a prediction.")
    if kind in ("model", "dataset") and "@" not in ident and split_version(ident)[1] is None:
        if kind == "model":
            return store.get_model_version(ident, None).ref
        return store.get_dataset_version(ident, None).ref
    return ident


def shaped(store: Store, found: LineageGraph) -> dict[str, Any]:
    """Nodes as {id, type, kind, name, detail, label, href}; edges as {from, to, relation, label}."""
    names = _Names(store)
    nodes = []
    for node, label in found.labels.items():
        name, detail = names.name(node)
        kind = KINDS.get(node[0], node[0].replace("_", " "))
        href = names.href(node)
        nodes.append(
            {
                "id": _key(node),
                "type": node[0],
                "kind": kind,
                "name": name,
                "detail": detail,
                "label": label,
                "href": href,
            }
        )
    edges = [
        {"from": _key(a), "to": _key(b), "relation": relation, "label": phrase(relation, "down")}
        for a, relation, b in found.edges
    ]
    return {"root": _key(found.root), "nodes": nodes, "edges": edges}


class _Names:
    """Short names and page addresses of nodes, reading each model and dataset list once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._versions: dict[str, tuple[str, int]] | None = None
        self._datasets: dict[str, str] | None = None

    def name(self, node: Node) -> tuple[str, str]:
        """A short name of the node, and a detail that tells it from others of the same name."""
        kind, ident = node
        if kind == "model_version":
            found = self.versions().get(ident)
            return (f"{found[0]}/{found[1]}" if found else ident), ""
        if kind == "dataset_version":
            return self.datasets().get(ident, ident), ""
        if kind == "run":
            return self._run_name(ident)
        if kind == "flow_run":
            try:
                return self.store.get_flow_run(ident).flow, ident[:8]
            except NotFound:
                return ident, ""
        if kind == "blob":
            return ident[:12], ""
        return ident, ""

    def href(self, node: Node) -> str | None:
        kind, ident = node
        if kind == "run":
            return f"/runs/{quote(ident, safe='')}"
        if kind == "flow_run":
            return f"/flows/{quote(ident, safe='')}"
        if kind == "model_version" and ident in self.versions():
            name, version = self.versions()[ident]
            return f"/models/{quote(name, safe='')}/versions/{version}"
        if kind == "dataset_version" and ident in self.datasets():
            return "/lineage?" + urlencode({"kind": "dataset", "id": self.datasets()[ident]})
        if kind in ("deployment", "predictions", "labels"):
            name = ident.split("@", 1)[0] if kind == "deployment" else ident.rpartition("/")[0]
            return f"/deployments/{quote(name, safe='/')}"
        if kind in ("prediction", "label"):
            return "/lineage?" + urlencode({"kind": "request", "id": ident})
        if kind == "receipt":
            return "/erasures"
        return None

    def versions(self) -> dict[str, tuple[str, int]]:
        if self._versions is None:
            self._versions = {
                mv.id: (mv.name, mv.version)
                for model in self.store.list_registered_models()
                for mv in self.store.list_model_versions(model.name)
            }
        return self._versions

    def datasets(self) -> dict[str, str]:
        if self._datasets is None:
            self._datasets = {ds.id: ds.ref for ds in self.store.list_dataset_versions()}
        return self._datasets

    def _run_name(self, ident: str) -> tuple[str, str]:
        try:
            run = self.store.get_run(ident)
        except NotFound:
            return ident, ""
        return run.name or ident[:8], run.experiment_name


def _check_root(root: Node, kind: str, ident: str) -> None:
    """Refuse an id that names another kind of entity than the page asked for."""
    if root[0] not in ROOTS[kind]:
        found = KINDS.get(root[0], root[0])
        other = next((k for k, types in ROOTS.items() if root[0] in types), None)
        hint = f" (open it with kind={other})" if other else ""
        raise InvalidInput(f"{ident!r:.80} is a {found}, not a {kind}{hint}.")


def _key(node: Node) -> str:
    return f"{node[0]}:{node[1]}"
