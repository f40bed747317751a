"""Generated requests against /openapi.json: whatever a client sends, the server never answers 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plinth

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@sqlite_only
@pytest.mark.slow
def test_no_server_errors(serve, cancer) -> None:  # type: ignore[no-untyped-def]
    x, _y, clf = cancer
    mv = plinth.register_model("bc", clf, input_example=x[:3])
    plinth.set_alias("bc", "champion", mv.version)
    server = serve(["bc@champion"])
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/models/{name}/predict", "/healthz", "/metrics"}
    calls = []

    @given(data=st.data())
    @settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def probe(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        response = case.call(base_url=server.url)
        calls.append(response.status_code)
        assert response.status_code < 500, (case.path, case.body, response.text)

    probe()
    assert len(calls) >= 2500
