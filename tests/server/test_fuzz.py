"""Generated requests against the team server's /openapi.json, as the superuser: never a 5xx.

Malformed JSON, wrong types, unknown ids and odd path parameters must come back as 4xx with a
message in the one error shape (MLflow's own under its paths), whatever route they reach.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from plinth.server.mlflow.errors import is_mlflow_path


@pytest.mark.slow
def test_no_server_errors(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    server = server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")
    auth = {"authorization": f"Bearer {server.admin_token}"}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    with_input = [op for op in operations if op.body or op.path_parameters or op.query]
    assert with_input
    statuses: collections.Counter[int] = collections.Counter()

    @given(data=st.data())
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def probe(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        operation = data.draw(st.sampled_from(with_input if mode is GenerationMode.NEGATIVE else operations))
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=server.url, headers=auth)
        statuses[response.status_code] += 1
        mlflow = is_mlflow_path(case.formatted_path)
        if mlflow and response.status_code == 501:  # MLflow's answer for what the server does not offer
            assert response.json()["error_code"] == "NOT_IMPLEMENTED", response.text
            return
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
        if response.status_code >= 400 and case.method != "HEAD":  # HEAD answers carry no body
            if mlflow:  # MLflow's own error shape, which its client reads
                assert set(response.json()) == {"error_code", "message"}, response.text
            else:
                assert set(response.json()["error"]) == {"type", "message", "problems"}, response.text

    probe()
    assert sum(statuses.values()) >= 250
    assert any(400 <= status < 500 for status in statuses)
