"""The endpoint table: every Store method has one route, and every route's arguments can travel."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from plinth.core.access import Right
from plinth.store import bodies, rpc, wire
from plinth.store.base import Store
from plinth.store.remote import RemoteStore


def test_every_abstract_store_method_has_an_endpoint_and_no_endpoint_is_extra() -> None:
    served = set(Store.__abstractmethods__) - rpc.UNSERVED
    assert set(rpc.BY_METHOD) == served
    assert len(rpc.ENDPOINTS) == len(served)  # one each


def test_routes_are_unique_and_under_the_api() -> None:
    routes = [(e.verb, e.path) for e in rpc.ENDPOINTS]
    assert len(set(routes)) == len(routes)
    assert all(e.path.startswith("/") and e.verb in ("GET", "POST", "PUT", "DELETE") for e in rpc.ENDPOINTS)


def test_the_remote_store_implements_every_method_with_the_store_signature() -> None:
    for endpoint in rpc.ENDPOINTS:
        mine = inspect.signature(getattr(RemoteStore, endpoint.method))
        theirs = inspect.signature(getattr(Store, endpoint.method))
        assert list(mine.parameters) == list(theirs.parameters), endpoint.method
        assert getattr(RemoteStore, endpoint.method) is not getattr(Store, endpoint.method)


@pytest.mark.parametrize("endpoint", rpc.ENDPOINTS, ids=lambda e: e.method)
def test_each_endpoints_arguments_and_result_have_a_wire_form(endpoint: rpc.Endpoint) -> None:
    hints = endpoint.hints
    for name in endpoint.signature.parameters:
        if name in endpoint.path_params or endpoint.verb == "GET":
            assert rpc.query_hint(hints[name]) is not None, f"{endpoint.method}({name}) cannot go in a URL"
        elif endpoint.method not in ("create_model_version", "write_prediction_columns"):
            wire.decoder(hints[name])  # raises for a type with no JSON form
    for name in endpoint.path_params:
        assert name in endpoint.signature.parameters or endpoint.method == "create_model_version"
    if endpoint.method not in rpc.BINARY_RESULTS:
        wire.decoder(hints["return"])


@pytest.mark.parametrize(
    ("method", "right"),
    [
        ("get_run", Right.READ),
        ("write_metrics", Right.WRITE),
        ("model_files", Right.LOAD),
        ("resolve_alias", Right.LOAD),
        ("set_alias", Right.MAINTAIN),
        ("delete_alias", Right.MAINTAIN),
        ("write_prediction_logs", Right.PREDICT),
        ("write_labels", Right.PREDICT),
        ("prediction_logs", Right.RAW),
        ("prediction_table", Right.RAW),
        ("find_prediction", Right.RAW),
        ("labeled_predictions", Right.RAW),
        ("window_labels", Right.RAW),
        ("label_of", Right.RAW),
        ("prediction_stats", Right.READ),
        ("audit_events", Right.AUDIT),
        ("verify_audit", Right.AUDIT),
        ("remove_predictions", Right.AUDIT),
        ("delete_labels", Right.AUDIT),
        ("count_prediction_logs", Right.AUDIT),
        ("scrub", Right.AUDIT),
        ("referenced_digests", Right.ADMIN),
    ],
)
def test_rights_follow_the_roles_rules(method: str, right: Right) -> None:
    assert rpc.BY_METHOD[method].right is right


def test_raw_logs_are_never_readable_with_read_alone() -> None:
    raw_results = ("PredictionLog", "pa.Table", "dict[str, str]")
    for endpoint in rpc.ENDPOINTS:
        returns = str(inspect.signature(getattr(Store, endpoint.method)).return_annotation)
        if endpoint.tag == "serving" and any(kind in returns for kind in raw_results):
            assert endpoint.right in (Right.RAW, Right.AUDIT), endpoint.method


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("x/y", str),
        ("", str),
        (5, int),
        (None, int | None),
        (True, bool),
        (float("inf"), float),
        (-0.5, float),
    ],
)
def test_query_text_goes_back_to_the_value(value: object, hint: object) -> None:
    assert rpc.from_query(rpc.to_query(value), hint, "query.x") == value  # type: ignore[arg-type]


def test_bad_query_text_is_refused_naming_the_parameter() -> None:
    with pytest.raises(wire.WireError, match=r"query.version: expected an integer"):
        rpc.from_query("three", int | None, "query.version")


def test_path_segments_cannot_climb_or_split() -> None:
    assert rpc.segment("org/churn") == "org%2Fchurn"
    assert rpc.segment("..") == "%2E%2E"


def test_binary_bodies_go_and_come_back() -> None:
    history = np.array(
        [(0, 5, 0.5), (1, 6, np.nan)], dtype=[("step", "i8"), ("timestamp_ms", "i8"), ("value", "f8")]
    )
    back = bodies.npy_array(bodies.npy_bytes(history))
    assert back.dtype == history.dtype and back["step"].tolist() == [0, 1]
    tables = [pa.table({"a": [1, 2]}), pa.table({"b": ["x"]})]
    assert [t.to_pydict() for t in bodies.unpack_tables(bodies.pack_tables(tables))] == [
        {"a": [1, 2]},
        {"b": ["x"]},
    ]
    with pytest.raises(wire.WireError, match="ends inside"):
        bodies.unpack_tables(bodies.pack_tables(tables)[:-3])
    with pytest.raises(wire.WireError, match="npy"):
        bodies.npy_array(b"not an array")


def test_lone_surrogates_travel_in_paths_and_queries_and_come_back() -> None:
    from plinth.store.http import query_text

    odd = "caf\udce9.x/y é"  # a lone surrogate: what an argument that is not UTF-8 decodes to
    assert rpc.path_text(f"/api/v1/runs/{rpc.segment(odd)}".encode()) == f"/api/v1/runs/{odd}"
    assert rpc.query_items(query_text({"subject_id": odd, "n": "1"}).encode()) == [
        ("subject_id", odd),
        ("n", "1"),
    ]
    assert rpc.path_text(b"/api/v1/runs/%FF") is None and rpc.query_items(b"a=%FF") is None


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (10**22, str(2**63 - 1)),
        (10**5000, str(2**63 - 1)),
        (-(10**30), str(-(2**63))),
        (2**63 - 1, str(2**63 - 1)),
    ],
    ids=["22-digits", "5000-digits", "minus-31-digits", "the-bound"],
)
def test_integers_past_64_bits_travel_as_the_bound_on_their_side(value: int, sent: str) -> None:
    assert rpc.to_query(value) == sent and rpc.within_64_bits(value) == int(sent)
    assert rpc.from_query(sent, int, "query.version") == int(sent)


def test_resolving_a_method_s_types_imports_pyarrow_only_for_a_method_that_names_a_table() -> None:
    """A remote client's first call of a tracking method does not wait for pyarrow to import."""
    code = (
        "import sys\n"
        "from plinth.store import rpc\n"
        "for method in ('create_run', 'write_metrics', 'end_run', 'search_runs'):\n"
        "    assert 'return' in rpc.hints_of(method), method\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow was imported'\n"
        "assert 'Table' in str(rpc.hints_of('write_prediction_columns')['tables'])\n"
        "assert 'pyarrow' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
