"""Lineage: one query from any entity up to its data and down to what it produced.

Nodes are (type, id): dataset_version, run, model_version, flow_run, blob, dataset_input,
deployment (a model's alias, what servers follow), predictions (the logs of one model version),
prediction (one request), labels (the delayed labels of a version's predictions), label and
receipt (an erasure's or retention pass's, which removed some of a version's predictions),
image (a container image built for a version) and k8s_deployment (manifests generated for it).
Edges come from the lineage table and from the links the entities carry (a model version's run
and aliases, a step run's flow run, a version's served predictions and their labels).

An edge (source, relation, target) reads both ways: walking down from the source it says what
the source did ("dataset consumed by run"), walking up from the target what was done to it or
by it ("run consumed dataset"); `RELATIONS` holds both phrases of every relation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from plinth.core.entities import LineageEdge
from plinth.core.errors import NotFound
from plinth.core.refs import MLFLOW_PREFIX, ModelRef, check_ref, split_version
from plinth.governance.erasure import ERASED
from plinth.store.base import Store

Node = tuple[str, str]

_REVERSED = {"used_model": "scored by"}
"""Edges stored as 'run used model' that read downstream as 'model scored by run'."""
RECEIPT_SCAN = 1000
"""Audit events read, from a second before a receipt was linked, to find the receipt's own."""

RELATIONS: dict[str, tuple[str, str]] = {
    "consumed_by": ("consumed by", "consumed"),
    "produced": ("produced", "produced by"),
    "feeds": ("feeds", "fed by"),
    "scored by": ("scored by", "scored with"),
    "ran": ("ran", "ran in"),
    "deployed as": ("deployed as", "deployment of"),
    "packaged as": ("packaged as", "image of"),
    "served": ("served", "served by"),
    "labeled by": ("labeled by", "labels"),
    "includes": ("includes", "included in"),
    "erased by": ("erased by", "erased"),
}
"""Each relation as read from its source to its target, and from its target back to its source."""


def phrase(relation: str, direction: str) -> str:
    """How `relation` reads walking `direction`: down from its source or up from its target."""
    forward, backward = RELATIONS.get(relation, (f"linked to ({relation})", f"linked from ({relation})"))
    return backward if direction == "up" else forward


@dataclass(repr=False)
class LineageGraph:
    """Nodes with labels, and directed edges (source, relation, target)."""

    root: Node
    labels: dict[Node, str] = field(default_factory=dict)
    edges: list[tuple[Node, str, Node]] = field(default_factory=list)

    def __repr__(self) -> str:
        kind, ident = self.root
        return f"<LineageGraph {kind} {ident}: {len(self.labels)} nodes, {len(self.edges)} edges>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "root": list(self.root),
            "nodes": [{"type": t, "id": i, "label": self.labels.get((t, i), i)} for t, i in self.labels],
            "edges": [
                {
                    "from": list(a),
                    "relation": r,
                    "to": list(b),
                    "reads": phrase(r, "down"),
                    "reads_back": phrase(r, "up"),
                }
                for a, r, b in self.edges
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        """The graph `to_dict` gave (what a team server answers)."""
        root = (str(data["root"][0]), str(data["root"][1]))
        graph = cls(root)
        graph.labels = {(str(n["type"]), str(n["id"])): str(n["label"]) for n in data["nodes"]}
        graph.edges = [
            ((str(e["from"][0]), str(e["from"][1])), str(e["relation"]), (str(e["to"][0]), str(e["to"][1])))
            for e in data["edges"]
        ]
        return graph

    def tree(self, direction: str) -> Iterator[str]:
        """Lines of a text tree from the root (up: towards data; down: towards predictions).

        Each line reads from the node above it: `run … └── consumed: dataset …` going up,
        `dataset … └── consumed by: run …` going down.
        """
        seen: set[Node] = set()
        yield self._label(self.root)
        yield from self._walk(self.root, direction, "", seen)

    def _walk(self, node: Node, direction: str, indent: str, seen: set[Node]) -> Iterator[str]:
        seen.add(node)
        nexts = (
            [(r, a) for a, r, b in self.edges if b == node]
            if direction == "up"
            else [(r, b) for a, r, b in self.edges if a == node]
        )
        for i, (relation, other) in enumerate(nexts):
            last = i == len(nexts) - 1
            yield f"{indent}{'└── ' if last else '├── '}{phrase(relation, direction)}: {self._label(other)}"
            if other not in seen:
                yield from self._walk(other, direction, indent + ("    " if last else "│   "), seen)

    def _label(self, node: Node) -> str:
        return self.labels.get(node, f"{node[0]} {node[1]}")


def lineage(
    store: Store, ref: str, direction: str = "both", depth: int = 8, *, personal: bool = True
) -> LineageGraph:
    """The lineage graph around `ref`: a run id, 'model/3', 'model@alias', 'models:/model/3',
    'dataset/2' (names may hold '/': 'org/churn/3'), a flow run id or a request id.

    `personal=False` leaves subject ids and label values out of the node labels (what a team
    server answers a role that may not read raw prediction logs).
    """
    root = _resolve(store, ref)
    graph = LineageGraph(root)
    graph.labels[root] = _describe(store, root, personal)
    directions = ["up", "down"] if direction == "both" else [direction]
    for way in directions:
        frontier = [root]
        for _ in range(depth):
            frontier = [n for node in frontier for n in _expand(store, graph, node, way, personal)]
            if not frontier:
                break
    return graph


def _expand(store: Store, graph: LineageGraph, node: Node, way: str, personal: bool) -> list[Node]:
    found = []
    for source, relation, target in _edges_of(store, node, way):
        edge = (source, relation, target)
        if edge in graph.edges:
            continue
        graph.edges.append(edge)
        other = source if way == "up" else target
        if other not in graph.labels:
            graph.labels[other] = _describe(store, other, personal)
            found.append(other)
    return found


def _edges_of(store: Store, node: Node, way: str) -> list[tuple[Node, str, Node]]:
    kind, ident = node
    out: list[tuple[Node, str, Node]] = []
    stored = store.edges(dst=node) if way == "up" else store.edges(src=node)
    out += [
        ((e.src_type, e.src_id), e.relation, (e.dst_type, e.dst_id))
        for e in stored
        if e.relation not in _REVERSED and e.relation != ERASED
    ]
    opposite = store.edges(src=node) if way == "up" else store.edges(dst=node)
    out += [
        ((e.dst_type, e.dst_id), _REVERSED[e.relation], (e.src_type, e.src_id))
        for e in opposite
        if e.relation in _REVERSED
    ]
    if kind == "model_version":
        mv = _version_by_id(store, ident)
        if mv is not None and way == "up" and mv.run_id:
            out.append((("run", mv.run_id), "produced", node))
        if mv is not None and way == "down":
            out += [(node, "deployed as", ("deployment", f"{mv.name}@{a}")) for a in mv.aliases]
            logged, _labeled = store.prediction_counts(mv.name, mv.version)
            if logged or _receipt_links(store.edges(src=node)):  # erased to the last: still a node
                out.append((node, "served", ("predictions", f"{mv.name}/{mv.version}")))
    if kind == "predictions" and way == "down":
        name, version = _name_version(ident)
        if store.prediction_counts(name, version)[1]:
            out.append((node, "labeled by", ("labels", ident)))
        out += _erased_by(store, node)
    if kind == "receipt" and way == "up":
        out += [
            (("predictions", str(e.attributes["predictions"])), "erased by", node)
            for e in _receipt_links(store.edges(dst=node))
        ]
    if kind == "predictions" and way == "up":
        name, version = _name_version(ident)
        out.append((("model_version", store.get_model_version(name, version).id), "served", node))
    if kind == "prediction":
        found = store.find_prediction(ident)
        if found is not None and way == "up":
            out.append((("predictions", f"{found.model}/{found.version}"), "includes", node))
        if found is not None and way == "down" and store.label_of(found.model, ident) is not None:
            out.append((node, "labeled by", ("label", ident)))
    if kind == "flow_run" and way == "down":
        out += [(node, "ran", ("run", step.id)) for step in store.step_runs(ident) if step.attempts]
    if kind == "run" and way == "up":
        run = store.get_run(ident)
        flow_run = run.tags.get("plinth.flow_run")
        if flow_run:
            out.append((("flow_run", flow_run), "ran", node))
    return out


def _resolve(store: Store, ref: str) -> Node:
    check_ref(ref, "lineage", "a run id, NAME/N, NAME@ALIAS or a request id")
    if "@" in ref or ref.startswith(MLFLOW_PREFIX):
        model = ModelRef.parse(ref)
        version = store.resolve_alias(model.name, model.alias) if model.alias else model.version
        return ("model_version", store.get_model_version(model.name, version).id)
    name, number = split_version(ref)
    if number is not None:
        try:
            return ("model_version", store.get_model_version(name, number).id)
        except NotFound:
            return ("dataset_version", store.get_dataset_version(name, number).id)
    # a flow run shares its id with its driver's run: the flow run is what the id names
    for kind, lookup in (("flow_run", store.get_flow_run), ("run", store.get_run)):
        try:
            lookup(ref)
            return (kind, ref)
        except NotFound:
            continue
    if store.find_prediction(ref) is not None:
        return ("prediction", ref)
    if _receipt_links(store.edges(dst=("receipt", ref))):
        return ("receipt", ref)
    raise NotFound(
        f"{ref!r} is not a run, a flow run, a model version (NAME/N or NAME@ALIAS), "
        "a dataset version (NAME/N), a prediction's request id or an erasure receipt's id."
    )


def _receipt_links(edges: list[LineageEdge]) -> list[LineageEdge]:
    """The edges among `edges` that link a model version to a receipt that removed its logs."""
    return [e for e in edges if e.relation == ERASED and e.dst_type == "receipt"]


def _erased_by(store: Store, node: Node) -> list[tuple[Node, str, Node]]:
    """Edges from a version's predictions to the receipts that removed some of them (stored
    from the version, whose id fits the lineage table where 'NAME/VERSION' may not)."""
    name, version = _name_version(node[1])
    try:
        version_id = store.get_model_version(name, version).id
    except NotFound:
        return []
    links = _receipt_links(store.edges(src=("model_version", version_id)))
    return [(node, "erased by", ("receipt", e.dst_id)) for e in links]


def _name_version(ident: str) -> tuple[str, int]:
    """('org/churn', 3) from the id 'org/churn/3' of a version's predictions or labels."""
    name, _, version = ident.rpartition("/")
    return name, int(version)


def _version_by_id(store: Store, version_id: str) -> Any:
    for model in store.list_registered_models():
        for mv in store.list_model_versions(model.name):
            if mv.id == version_id:
                return mv
    return None


def _environment(run: Any) -> str:
    """', commit abc, Python 3.11.7, 161 packages' from a run's captured environment (or '')."""
    env = run.environment or {}
    git = env.get("git") or {}
    commit = f", commit {str(git.get('commit'))[:10]}" if git.get("commit") else ""
    python = (env.get("python") or {}).get("version")
    packages = len(env.get("packages") or {})
    return commit + (f", Python {python}, {packages} packages" if python else "")


def _describe(store: Store, node: Node, personal: bool = True) -> str:
    kind, ident = node
    try:
        if kind == "run":
            run = store.get_run(ident)
            return f"run {ident} ({run.experiment_name}/{run.name}, {run.status.value}{_environment(run)})"
        if kind == "flow_run":  # a flow run shares its id with the driver run, which holds the environment
            flow = store.get_flow_run(ident)
            return f"flow run {ident} ({flow.flow}, {flow.status.value}{_environment(store.get_run(ident))})"
        if kind == "model_version":
            mv = _version_by_id(store, ident)
            return f"model {mv.ref} ({mv.flavor})" if mv else f"model version {ident}"
        if kind == "dataset_version":
            for ds in store.list_dataset_versions():
                if ds.id == ident:
                    return f"dataset {ds.ref} ({ds.rows} rows, sha256 {ds.digest[:12]})"
        if kind == "predictions":
            name, version = _name_version(ident)
            count, labeled = store.prediction_counts(name, version)
            return f"prediction logs of {ident} ({count} requests, {labeled} labeled)"
        if kind == "labels":
            name, version = _name_version(ident)
            return f"labels of {ident} ({store.prediction_counts(name, version)[1]} requests)"
        if kind == "deployment":
            return f"deployment {ident} (served by `plinth serve {ident}`)"
        if kind in ("image", "k8s_deployment"):
            return _describe_deploy_node(store, kind, ident)
        if kind == "prediction":
            found = store.find_prediction(ident)
            if found is not None:
                subject = f", subject {found.subject_id}" if found.subject_id and personal else ""
                return f"prediction {ident} ({found.model}/{found.version}{subject})"
        if kind == "receipt":
            return _describe_receipt(store, ident, personal)
        if kind == "label" and not personal:
            return f"label of {ident}"
        if kind == "label":
            found = store.find_prediction(ident)
            value = store.label_of(found.model, ident) if found is not None else None
            return f"label {value} of {ident}"
    except NotFound:
        pass
    return f"{kind} {ident}"


def _describe_deploy_node(store: Store, kind: str, ident: str) -> str:
    """An image (its tags, size) or a generated Kubernetes Deployment (its namespace and image)."""
    attributes = next((e.attributes for e in store.edges(dst=(kind, ident))), {})
    if kind == "image":
        tags = ", ".join([*attributes.get("repo_digests", []), *attributes.get("tags", [])][:3])
        size = attributes.get("size_bytes")
        shown = f" ({tags}{', ' if tags and size else ''}{f'{size / 1e6:.0f} MB' if size else ''})"
        return f"image sha256:{ident[:12]}{shown if tags or size else ''}"
    return f"Kubernetes Deployment {ident} (image {attributes.get('image', 'unknown')})"


def _describe_receipt(store: Store, ident: str, personal: bool) -> str:
    """'erasure receipt 2026-12-05 20:31 UTC: 3 prediction logs and 2 labels removed (subject
    s-42)', the subject only where `personal`; a retention pass says from before when."""
    links = _receipt_links(store.edges(dst=("receipt", ident)))
    if not links:
        return f"receipt {ident}"
    facts = links[0].attributes
    removed = f"{facts['prediction_logs']} prediction logs and {facts['labels']} labels"
    when = _utc(int(facts["time_ms"]))
    if facts.get("action") == "retention":
        return f"retention pass {when}: {removed} older than {_utc(int(facts['before_ms']))} removed"
    subject = _erased_subject(store, ident) if personal else None
    return f"erasure receipt {when}: {removed} removed" + (f" (subject {subject})" if subject else "")


def _erased_subject(store: Store, receipt_id: str) -> str | None:
    """The subject an erasure receipt names, from its audit event: the lineage edges leave it
    out, since everyone who may read lineage reads them. The event was recorded with the edges,
    in one transaction, just before the event that audits them."""
    linked = [e for e in store.audit_events(entity_id=receipt_id) if e.action == "lineage.add"]
    if not linked:
        return None
    for event in store.audit_events(since_ms=linked[0].time_ms - 1000, limit=RECEIPT_SCAN):
        if event.action == "governance.erasure" and event.entity_type == "subject":
            if _receipt_id(event.after) == receipt_id:
                return event.entity_id
    return None


def _receipt_id(after: str | None) -> str | None:
    try:
        found = json.loads(after or "{}")
    except json.JSONDecodeError:  # an edited event (the chain check names it): no receipt here
        return None
    return str(found.get("id")) if isinstance(found, dict) else None


def _utc(time_ms: int) -> str:
    """'2026-12-05 20:31 UTC'."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
