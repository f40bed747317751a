"""The store over HTTP: one table of endpoints, read by the server's routes and the remote store.

Each abstract method of `Store` is one `Endpoint`: an HTTP verb and a path under `/api/v1`, and
the right a caller needs in the workspace. Arguments named in the path travel there; a GET
sends the others as query parameters, every other verb as a JSON object of them (`wire`). A
result is JSON, except where it is binary (`BINARY_RESULTS`; the bodies are in `bodies`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from plinth.core import entities
from plinth.core.access import Right
from plinth.core.audit import AuditAdoption, AuditCheck, AuditHead
from plinth.core.filters import Expr, OrderKey
from plinth.store import base
from plinth.store.wire import refused

API = "/api/v1"
NPY = "application/x-npy"
ARROW = "application/vnd.apache.arrow.stream"
JSON = "application/json"
RETURN_MINIMAL = "return=minimal"
"""A request's `Prefer` for no result in the answer (RFC 7240): a write whose caller has what it
would say is answered 204, with `Preference-Applied` naming it."""
BINARY_RESULTS = {"metric_history": NPY, "prediction_table": ARROW}
"""Methods whose result travels as a binary body, and its media type."""
UNSERVED = frozenset({"close", "batch", "batch_is_atomic"})
"""Store methods that are about the connection, not the data: no endpoint."""

_PATH_PARAM = re.compile(r"{(\w+)(?::path)?}")
_PARTS = (
    (base.TrackingStore, "tracking"),
    (base.ModelRegistryStore, "registry"),
    (base.FlowStore, "flows"),
    (base.ServingStore, "serving"),
)
SURROGATES = "surrogatepass"
"""How URL text carries lone surrogates: as the bytes UTF-8 would give them if it allowed them."""
_INT = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class Endpoint:
    """One store method as an HTTP route.

    Args:
        method: the `Store` method's name.
        verb: GET, POST, PUT or DELETE.
        path: under `/api/v1`; `{name}` marks an argument sent in the path (`{name:path}` may
            hold '/'; the client percent-encodes it).
        right: what the caller's role in the workspace must grant.
        idempotent: whether sending it twice leaves the same state, so a client may retry it
            after the request went out (False: retried only when it could not be sent).
        summary: one line for the OpenAPI document (default: the method's docstring's first line).
    """

    method: str
    verb: str
    path: str
    right: Right
    idempotent: bool = True
    summary: str = ""

    @property
    def tag(self) -> str:
        """The OpenAPI tag: the part of the store the method belongs to."""
        return next((tag for part, tag in _PARTS if self.method in vars(part)), "store")

    @property
    def path_params(self) -> tuple[str, ...]:
        """Arguments sent in the path, in order."""
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def signature(self) -> inspect.Signature:
        """The `Store` method's signature (without `self`)."""
        return signature_of(self.method)

    @property
    def hints(self) -> Mapping[str, Any]:
        """The `Store` method's parameter and return types, resolved."""
        return hints_of(self.method)

    @property
    def doc(self) -> str:
        """The first line of the method's docstring."""
        text = inspect.getdoc(getattr(base.Store, self.method)) or self.method
        return self.summary or text.splitlines()[0]


def _e(method: str, verb: str, path: str, right: Right, idempotent: bool = True) -> Endpoint:
    return Endpoint(method, verb, path, right, idempotent)


R, L, W, P, M, X, A, ADM = (
    Right.READ,
    Right.LOAD,
    Right.WRITE,
    Right.PREDICT,
    Right.MAINTAIN,
    Right.RAW,
    Right.AUDIT,
    Right.ADMIN,
)

ENDPOINTS: tuple[Endpoint, ...] = (
    # tracking: experiments and runs
    _e("get_or_create_experiment", "POST", "/experiments", W),
    _e("list_experiments", "GET", "/experiments", R),
    _e("get_experiment", "GET", "/experiments/{name_or_id:path}", R),
    _e("set_experiment_tags", "POST", "/experiments/tags", W),
    _e("create_run", "POST", "/runs", W, idempotent=False),
    _e("create_runs", "POST", "/runs/batch", W, idempotent=False),
    _e("end_runs", "POST", "/runs/end", W),
    _e("heartbeat", "POST", "/runs/heartbeat", W),
    _e("reap_crashed", "POST", "/runs/reap", W),
    _e("search_runs", "POST", "/runs/search", R),
    _e("count_runs", "POST", "/runs/count", R),
    _e("get_run", "GET", "/runs/{run_id}", R),
    _e("log_params", "POST", "/runs/{run_id}/params", W),
    _e("set_tags", "POST", "/runs/{run_id}/tags", W),
    _e("delete_run_tag", "POST", "/runs/{run_id}/tags/delete", W),
    _e("rename_run", "POST", "/runs/{run_id}/name", W),
    _e("reopen_run", "POST", "/runs/{run_id}/reopen", W),
    _e("end_run", "POST", "/runs/{run_id}/end", W),
    _e("write_metrics", "POST", "/metrics", W),
    _e("metric_keys", "GET", "/runs/{run_id}/metrics", R),
    _e("metric_history", "GET", "/runs/{run_id}/metrics/history", R),
    _e("add_artifacts", "POST", "/runs/{run_id}/artifacts", W),
    _e("list_artifacts", "GET", "/runs/{run_id}/artifacts", R),
    _e("delete_artifacts", "POST", "/runs/{run_id}/artifacts/delete", W),
    _e("referenced_digests", "GET", "/blobs/referenced", ADM),
    # logged models (MLflow 3)
    _e("create_logged_model", "POST", "/logged-models", W, idempotent=False),
    _e("search_logged_models", "POST", "/logged-models/search", R),
    _e("get_logged_model", "GET", "/logged-models/{model_id}", R),
    _e("update_logged_model", "POST", "/logged-models/{model_id}/update", W),
    _e("delete_logged_model_tag", "POST", "/logged-models/{model_id}/tags/delete", W),
    # datasets, lineage, audit
    _e("add_dataset_version", "POST", "/datasets", W),
    _e("list_dataset_versions", "GET", "/datasets", R),
    _e("get_dataset_version", "GET", "/datasets/{name:path}/version", R),
    _e("add_edge", "POST", "/lineage/edge", W),
    _e("add_edges", "POST", "/lineage/edges", W),
    _e("edges", "POST", "/lineage/search", R),
    _e("record_audit", "POST", "/audit/events", A, idempotent=False),  # erasure and gc: auditors, admins
    _e("audit_events", "POST", "/audit/events/search", A),  # a list of actions: no query form
    _e("count_audit_events", "POST", "/audit/events/count", A),
    _e("audit_actions", "GET", "/audit/actions", A),
    _e("verify_audit", "POST", "/audit/verify", A),
    _e("adopt_audit", "POST", "/audit/adopt", A),
    _e("scrub", "POST", "/scrub", A),
    # registry
    _e("list_registered_models", "GET", "/models", R),
    _e("create_registered_model", "POST", "/models", W, idempotent=False),
    _e("create_model_version", "POST", "/models/{name:path}/versions", W),
    _e("list_model_versions", "GET", "/models/{name:path}/versions", L),
    _e("get_model_version", "GET", "/models/{name:path}/version", L),
    _e("sign_model_version", "POST", "/models/{name:path}/versions/{version}/signature", W),
    _e("set_model_description", "POST", "/models/{name:path}/description", W),
    _e("resolve_alias", "GET", "/models/{name:path}/aliases/{alias}", L),
    _e("set_alias", "PUT", "/models/{name:path}/aliases/{alias}", M),
    _e("delete_alias", "DELETE", "/models/{name:path}/aliases/{alias}", M),
    _e("model_files", "GET", "/model-versions/{version_id}/files", L),
    # a name may hold '/': a version's routes come before the model's that would match them too
    _e("set_model_version_tags", "POST", "/models/{name:path}/versions/{version}/tags", W),
    _e("delete_model_version_tag", "POST", "/models/{name:path}/versions/{version}/tags/delete", M),
    _e("get_registered_model", "GET", "/models/{name:path}/registered", R),
    _e("set_registered_model_tags", "POST", "/models/{name:path}/tags", W),
    _e("delete_registered_model_tag", "POST", "/models/{name:path}/tags/delete", M),
    _e("set_reference", "PUT", "/models/{model:path}/reference", W),
    _e("get_reference", "GET", "/models/{model:path}/reference", R),
    # flows
    _e("create_flow_run", "POST", "/flow-runs", W, idempotent=False),
    _e("list_flow_runs", "GET", "/flow-runs", R),
    _e("get_flow_run", "GET", "/flow-runs/{run_id}", R),
    _e("finish_flow_run", "POST", "/flow-runs/{run_id}/finish", W),
    _e("crash_flow_run", "POST", "/flow-runs/{run_id}/crash", W),
    _e("step_runs", "GET", "/flow-runs/{flow_run_id}/steps", R),
    _e("save_step_runs", "POST", "/step-runs", W),
    _e("cached_step", "GET", "/step-runs/cached", R),
    _e("claim_trigger", "POST", "/triggers/claim", W, idempotent=False),
    _e("set_trigger_run", "POST", "/triggers/run", W),
    _e("triggers", "GET", "/triggers", R),
    # serving: prediction logs, labels, references, alerts
    _e("write_prediction_logs", "POST", "/predictions", P),
    _e("write_prediction_columns", "POST", "/predictions/columns", P),
    _e("compact_prediction_logs", "POST", "/predictions/compact", P),
    _e("prediction_logs", "GET", "/predictions", X),
    _e("prediction_table", "GET", "/predictions/table", X),
    _e("find_prediction", "GET", "/predictions/find", X),
    _e("prediction_stats", "GET", "/predictions/stats", R),
    _e("prediction_counts", "GET", "/predictions/counts", R),
    _e("count_prediction_logs", "GET", "/predictions/count", A),
    _e("delete_prediction_logs", "POST", "/predictions/delete", A),
    _e("remove_predictions", "POST", "/predictions/remove", A),
    _e("sweep_prediction_blobs", "POST", "/predictions/sweep", ADM),
    _e("write_labels", "POST", "/labels", P),
    _e("label_of", "GET", "/labels/one", X),
    _e("window_labels", "GET", "/labels/window", X),
    _e("labeled_predictions", "GET", "/labels/predictions", X),
    _e("count_labels", "GET", "/labels/count", A),
    _e("delete_labels", "POST", "/labels/delete", A),
    _e("alert_states", "GET", "/alerts", R),
    _e("save_alert_state", "POST", "/alerts", W),
)
"""Every data method of `Store`, as a route (a test holds this to the abstract methods)."""

BY_METHOD: Mapping[str, Endpoint] = {e.method: e for e in ENDPOINTS}


@dataclass(frozen=True)
class VersionRequest:
    """The body of `POST /models/{name}/versions`: a version whose manifest the client sealed for
    number `version`; the server records it only while `version` is the model's next number."""

    version: int
    flavor: str
    sealed: base.SealedManifest
    files: list[entities.ModelFile]
    signature: dict[str, Any] | None
    environment: dict[str, Any]
    run_id: str | None
    description: str
    source: str | None = None


@functools.cache
def signature_of(method: str) -> inspect.Signature:
    """The signature of `Store.<method>` without `self`."""
    sig = inspect.signature(getattr(base.Store, method))
    return sig.replace(parameters=list(sig.parameters.values())[1:])


@functools.cache
def hints_of(method: str) -> Mapping[str, Any]:
    """The resolved type hints of `Store.<method>` (the names base.py imports for type checking).

    pyarrow is imported only for a method whose types name it: a client's first call of any
    other would otherwise wait for it (tens of milliseconds, and its memory)."""
    import numpy as np

    function = getattr(base.Store, method)
    pa: Any = types.SimpleNamespace(Table=bytes)  # a client without the `data` extra never asks for a table
    if any("pa." in str(hint) for hint in function.__annotations__.values()):
        with contextlib.suppress(ImportError):
            pa = importlib.import_module("pyarrow")
    names = {
        **vars(entities),
        "np": np,
        "pa": pa,
        "AuditAdoption": AuditAdoption,
        "AuditCheck": AuditCheck,
        "AuditHead": AuditHead,
        "Expr": Expr,
        "OrderKey": OrderKey,
    }
    return typing.get_type_hints(function, globalns=vars(base), localns=names)


def query_hint(hint: Any) -> type | None:
    """The scalar type a query parameter of type `hint` has (`int | None` -> int); None if it is
    not a scalar and so cannot travel in a query or a path."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if len(args) == 1 and args[0] in (str, int, float, bool):
        return typing.cast(type, args[0])
    return None


def to_query(value: str | int | float | bool | None) -> str:
    """A scalar argument as query or path text; None is the empty text (see `from_query`); an
    integer past 64 bits is sent as the bound on its side (see `within_64_bits`)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int):
        return str(within_64_bits(value))
    return str(value)


def within_64_bits(value: int) -> int:
    """`value`, or the 64-bit bound on its side when it is past 64 bits (what the server reads).

    No store holds a larger integer, so the bound compares with every stored value as `value`
    does: a version 10**30 is not found through a server, as on a local store, instead of
    being refused as an argument no column takes.
    """
    return value if -(2**63) <= value < 2**63 else (2**63 - 1 if value > 0 else -(2**63))


def from_query(text: str, hint: Any, where: str) -> Any:
    """The argument of type `hint` that `to_query` wrote as `text`; empty text is None where
    `hint` allows None and is not text.

    Raises:
        WireError: `text` is not a value of that type.
    """
    kind = query_hint(hint)
    optional = type(None) in typing.get_args(hint)
    if kind is str:
        return text
    if text == "" and optional:
        return None
    if kind is int and _INT.fullmatch(text):
        return int(text)
    if kind is float:
        try:
            return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(text, text))
        except ValueError:
            pass
    if kind is bool and text in ("true", "false"):
        return text == "true"
    expected = {int: "an integer", float: "a number", bool: "true or false"}.get(kind or str, "a value")
    raise refused(where, expected + (" or empty (none)" if optional else ""), text)


def segment(value: str) -> str:
    """`value` as one path segment: every '/' and '.' percent-encoded, so no proxy or client
    reads it as a separator or a dot segment. A lone surrogate (what an argument that is not
    UTF-8 decodes to) goes as its three UTF-8-style bytes, which `path_text` reads back:
    the server's store then answers a lookup by it as a local store does."""
    return quote(value.encode("utf-8", SURROGATES), safe="").replace(".", "%2E")


def path_text(raw_path: bytes) -> str | None:
    """A request's percent-encoded path decoded with the lone surrogates `segment` wrote; None
    where its bytes are not UTF-8 even so (the server's own decoding then stands)."""
    try:
        return unquote_to_bytes(raw_path).decode("utf-8", SURROGATES)
    except UnicodeDecodeError:
        return None


def query_items(query_string: bytes) -> list[tuple[str, str]] | None:
    """A request's query string as (name, value) pairs, with the lone surrogates `query_text`
    wrote (see `plinth.store.http.query_text`); None where its bytes are not UTF-8 even so."""
    try:
        text = query_string.decode("ascii")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors=SURROGATES)
    except UnicodeDecodeError:
        return None
