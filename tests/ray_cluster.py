"""A real Ray cluster on this machine for the tests, started once per test process.

The head (1 CPU) and one worker node (1 CPU and one simulated GPU) listen on 127.0.0.1, with
the GCS on a free port (6379 may be taken by Redis) and no dashboard. Tests that need more nodes
(to kill one, or one that looks like another host: 127.0.0.2 is loopback too, but Ray tells hosts
apart by IP) add them with `add_node` and remove them themselves. Ray tests carry
`@pytest.mark.xdist_group("ray")`, and `--dist loadgroup` sends them all to one xdist worker, so
a session starts one cluster (the conftest.py files of tests/compute and tests/flows import
`pytest_collection_modifyitems` from here to make that grouping work). It is stopped when the
test process exits.
"""

from __future__ import annotations

import atexit
import os
import socket
import time
from typing import Any

import pytest

RAY_MARK = [pytest.mark.xdist_group("ray")]
_cluster: Any = None
_client_port = 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give tests marked `xdist_group("ray")` the `@ray` node id suffix `--dist loadgroup` sorts by.

    xdist 3.8 adds it by setting `item._nodeid`, which pytest 9.2 no longer reads (node ids are
    `item._id`), so without this every worker would get some Ray tests and start a cluster.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # an older pytest, where xdist's own suffix works
        return
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{mark.args[0] if mark.args else 'default'}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shared_cluster() -> Any:
    """The process's test cluster, started (and the driver connected) on first use."""
    global _cluster
    if _cluster is not None:
        return _cluster
    ray = pytest.importorskip("ray")
    import ray._private.ray_constants as constants
    from ray.cluster_utils import Cluster

    # Ray rewrites a 127.0.0.1 address to the host's network address, where these nodes do not
    # listen; with this off it keeps loopback addresses as they are (the variable reaches the
    # processes Ray starts, such as the Ray Client server's, and other drivers the tests start).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants.ENABLE_RAY_CLUSTER = False
    global _client_port
    _client_port = _free_port()
    head = {
        "num_cpus": 1,
        "node_ip_address": "127.0.0.1",
        "gcs_server_port": _free_port(),
        "ray_client_server_port": _client_port,  # ray://127.0.0.1:PORT, for drivers elsewhere
    }
    # CPU tasks may use the GPU node too (Ray keeps them off GPU nodes by default): two CPUs in all.
    # A removed node counts as dead after about 2 s instead of Ray's default 15 or so.
    config = {
        "scheduler_avoid_gpu_nodes": False,
        "health_check_period_ms": 1000,
        "health_check_timeout_ms": 1000,
        "health_check_failure_threshold": 2,
    }
    cluster = Cluster(
        initialize_head=True, head_node_args={**head, "include_dashboard": False, "_system_config": config}
    )
    cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, namespace="plinth", log_to_driver=False, logging_level="error")
    _cluster = cluster
    atexit.register(_stop)
    return cluster


def client_address() -> str:
    """The Ray Client address of the test cluster (ray://127.0.0.1:PORT)."""
    shared_cluster()
    return f"ray://127.0.0.1:{_client_port}"


def add_node(**args: Any) -> Any:
    """Add a node to the test cluster (127.0.0.1 and 1 CPU unless told otherwise); wait for it."""
    cluster = shared_cluster()
    node = cluster.add_node(**{"num_cpus": 1, "node_ip_address": "127.0.0.1", **args})
    cluster.wait_for_nodes()
    return node


def remove_node(node: Any) -> None:
    """Kill a node added by `add_node` and wait until Ray counts it dead."""
    import ray

    cluster = shared_cluster()
    cluster.remove_node(node, allow_graceful=False)
    deadline = time.monotonic() + 60
    while any(n["Alive"] and n["NodeID"] == node.node_id for n in ray.nodes()):
        # a node Ray still counts would change the cluster every later test sees
        assert time.monotonic() < deadline, f"Ray still counts removed node {node.node_id} alive"
        time.sleep(0.1)


def _stop() -> None:
    global _cluster
    import ray

    if _cluster is not None:
        ray.shutdown()
        _cluster.shutdown()
        _cluster = None
