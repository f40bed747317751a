"""Connecting to Ray: a Ray Client server that fails to start on a loaded head is tried again.

A stand-in `ray` module replays the failure Ray's client proxy reports; no cluster is involved.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from plinth.compute.ray import cluster as ray_cluster
from plinth.core.errors import ConfigError

FAILED = "Initialization failure from server: RuntimeError: Starting Ray client server failed."


ZOMBIE = (
    "Initialization failure from server:\nTraceback (most recent call last):\n"
    "  ...\npsutil.ZombieProcess: PID still exists but it's a zombie (pid=22770)\n"
)


def fake_ray(failures: int, error: type[Exception] = ConnectionError, message: str = FAILED) -> Any:
    calls: list[str] = []
    state = {"up": False}

    def init(address: str | None = None, **options: Any) -> None:
        calls.append(str(address))
        if len(calls) <= failures:
            raise error(message)
        state["up"] = True

    context = types.SimpleNamespace(gcs_address="")
    module = types.SimpleNamespace(
        init=init,
        is_initialized=lambda: state["up"],
        get_runtime_context=lambda: context,
        calls=calls,
    )
    return module


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_cluster.time, "sleep", lambda seconds: None)


def test_a_client_server_that_failed_to_start_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = fake_ray(failures=2)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: ray)
    assert ray_cluster.connect("ray://127.0.0.1:10001") == "ray://127.0.0.1:10001"
    assert len(ray.calls) == 3


def test_a_head_tripping_over_the_previous_clients_server_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ray = fake_ray(failures=1, message=ZOMBIE)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: ray)
    assert ray_cluster.connect("ray://127.0.0.1:10001") == "ray://127.0.0.1:10001"
    assert len(ray.calls) == 2


def test_it_gives_up_after_three_tries_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = fake_ray(failures=5)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: ray)
    with pytest.raises(ConfigError, match=r"Cannot connect to the Ray cluster at ray://127\.0\.0\.1:10001"):
        ray_cluster.connect("ray://127.0.0.1:10001")
    assert len(ray.calls) == ray_cluster.CLIENT_ATTEMPTS


def test_other_failures_and_direct_addresses_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    direct = fake_ray(failures=1)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: direct)
    with pytest.raises(ConfigError):
        ray_cluster.connect("127.0.0.1:6379")
    assert len(direct.calls) == 1
    refused = fake_ray(failures=1, error=ValueError)
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: refused)
    with pytest.raises(ConfigError):
        ray_cluster.connect("ray://127.0.0.1:10001")
    assert len(refused.calls) == 1
