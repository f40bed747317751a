"""Generated requests against /openapi.json: whatever a client sends, the server never answers 5xx."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sklearn.linear_model import LogisticRegression

import plinth

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

# what a client can put in a header value: visible ASCII, spaces and Latin-1 (control characters
# such as NEL among them), of any length; leading and trailing whitespace never reaches the server
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
).map(str.strip)


@sqlite_only
@pytest.mark.slow
def test_no_server_errors(serve: Callable[..., Any], cancer: tuple[Any, Any, LogisticRegression]) -> None:
    x, _y, clf = cancer
    mv = plinth.register_model("bc", clf, input_example=x[:3])
    plinth.set_alias("bc", "champion", mv.version)
    server = serve(["bc@champion"])
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert paths >= {"/v1/models/{name}/predict", "/v1/models/{name}/labels", "/healthz", "/metrics"}
    with_input = [op for op in operations if op.body or op.headers or op.path_parameters]
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()

    @given(data=st.data())
    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def probe(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        operation = data.draw(st.sampled_from(with_input if mode is GenerationMode.NEGATIVE else operations))
        served = operation.path_parameters and data.draw(st.integers(0, 7)) > 0  # mostly the served model
        case = data.draw(
            operation.as_strategy(generation_mode=mode, path_parameters={"name": "bc"} if served else None)
        )
        if operation.path.endswith("/predict") and data.draw(st.booleans()):
            case.headers = {**(case.headers or {}), "x-request-id": data.draw(HEADER_TEXT)}
        response = case.call(base_url=server.url)
        statuses[operation.path, response.status_code] += 1
        assert response.status_code < 500, (case.path, case.headers, case.body, response.text)

    probe()
    assert sum(statuses.values()) >= 1000  # Hypothesis runs an input-free operation once
    assert {path for path, _ in statuses} == paths
    assert {status for path, status in statuses if path.endswith("/labels")} >= {200, 422}
