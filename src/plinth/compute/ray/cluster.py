"""The Ray cluster as plinth sees it: connecting, its nodes, and whether its stores are shared.

`ray` is imported here only when a function needs it, so `import plinth` never loads it.

Every Ray worker opens the metadata and artifact stores named by the driver's settings. On one
host that works with the embedded defaults (a SQLite file and a folder). Once the cluster has nodes
on other hosts (told apart by IP address, as Ray does), both stores must be reachable from all of
them: `check_shared_storage` refuses a SQLite store, a store or S3 endpoint on a loopback address,
and an artifact folder that a probe task on each other host cannot see, naming the settings to use.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from plinth.core.errors import ConfigError, StorageNotShared
from plinth.core.settings import Settings, read_env_file

log = logging.getLogger("plinth.compute")

FORWARDED_PREFIXES = ("PLINTH_", "AWS_", "AZURE_STORAGE_", "GOOGLE_APPLICATION_CREDENTIALS")
"""Environment variables the driver passes on to every Ray worker (settings and store credentials)."""
NOT_FORWARDED = ("PLINTH_TOKEN", "PLINTH_ADMIN_TOKEN")
"""A person's or the server's token never goes to workers: a flow's steps get a step token of
their own in the task's environment (plinth.flows.credentials)."""
PROBE_TIMEOUT_S = 60.0
_checked: set[tuple[Any, ...]] = set()
_lock = threading.Lock()


@dataclass(frozen=True)
class NodeInfo:
    """One Ray node: where it is and what it has (resources as Ray counts them)."""

    id: str
    address: str
    hostname: str
    alive: bool
    head: bool
    cpus: float
    gpus: float
    memory: int
    object_store_memory: int
    resources: Mapping[str, float]


def import_ray() -> ModuleType:
    """The `ray` module; ConfigError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "The Ray executor needs Ray, which is not installed: pip install 'plinth[ray]' "
            "(or choose the local executor)."
        ) from exc
    return ray


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The driver's variables every worker gets: PLINTH_* settings and object store credentials.

    By default the environment over the working directory's `.env`, as `Settings.from_env` reads
    them: workers on other nodes do not see the driver's `.env`.
    """
    env = {**read_env_file(".env"), **os.environ} if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) and k not in NOT_FORWARDED}


def connect(address: str | None = None, init_options: Mapping[str, Any] | None = None) -> str:
    """Connect this process to the Ray cluster at `address` (once); returns the address in use.

    Args:
        address: "auto" (a cluster started on this machine with `ray start`), "HOST:PORT",
            "ray://HOST:10001" (Ray Client), or None (RAY_ADDRESS, else a running local cluster,
            else a new single-node Ray on this machine).
        init_options: more keyword arguments for `ray.init`.

    Raises:
        ConfigError: Ray is missing, the cluster cannot be reached, or this process is already
            connected to another cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        return _current_address(ray, address)
    options = dict(init_options or {})
    options.setdefault("namespace", "plinth")
    options.setdefault("logging_level", "warning")
    # Settings and credentials go with each task (RayExecutor.submit), not into the job's
    # runtime_env, which Ray shows to anyone who can read its dashboard.
    try:
        _init(ray, address, options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"Cannot connect to the Ray cluster at {address or 'RAY_ADDRESS / this machine'}: {exc}. "
            "Check the address (--ray-address / RAY_ADDRESS: 'auto', 'HOST:6379' or 'ray://HOST:10001') "
            "and that the cluster is up (`ray status`)."
        ) from exc
    return _current_address(ray, address)


CLIENT_ATTEMPTS = 3
"""Tries at a Ray Client connection: the head starts a server process per client, which can fail
to come up on a loaded head ('Starting Ray client server failed', or 'Initialization failure from
server' when the head trips over the previous client's exiting server) and work on the next try."""

_CLIENT_TRANSIENT = ("client server failed", "initialization failure from server")


def _init(ray: ModuleType, address: str | None, options: Mapping[str, Any]) -> None:
    attempts = CLIENT_ATTEMPTS if address and address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **options)
            return
        except (ConnectionError, RuntimeError) as exc:
            if attempt == attempts or not any(text in str(exc).lower() for text in _CLIENT_TRANSIENT):
                raise
            log.warning("Ray Client server did not start (try %d of %d); trying again", attempt, attempts)
            time.sleep(2.0 * attempt)


def _current_address(ray: ModuleType, asked: str | None) -> str:
    context = ray.get_runtime_context()
    current = str(getattr(context, "gcs_address", "") or "")
    if asked and asked not in ("auto", "local") and not asked.startswith("ray://") and current:
        if _host_port(asked) != _host_port(current) and not _same_local(asked, current):
            raise ConfigError(
                f"This process is already connected to the Ray cluster at {current}, not {asked}; "
                "a process talks to one cluster: use that address, or run in a new process."
            )
    return current or asked or "local"


def _host_port(address: str) -> str:
    return address.split("://", 1)[-1].strip("/")


def _same_local(a: str, b: str) -> bool:
    """Both name this machine on the same port (Ray rewrites 127.0.0.1 to the node's address)."""
    (ha, _, pa), (hb, _, pb) = _host_port(a).rpartition(":"), _host_port(b).rpartition(":")
    return pa == pb and (_loopback(ha) or _loopback(hb))


def nodes(alive_only: bool = True) -> list[NodeInfo]:
    """The cluster's nodes (alive ones unless told otherwise), head first."""
    ray = import_ray()
    found = []
    for node in ray.nodes():
        if alive_only and not node.get("Alive"):
            continue
        res = node.get("Resources") or {}
        found.append(
            NodeInfo(
                id=node["NodeID"],
                address=node.get("NodeManagerAddress", ""),
                hostname=node.get("NodeManagerHostname", ""),
                alive=bool(node.get("Alive")),
                head="node:__internal_head__" in res,
                cpus=float(res.get("CPU", 0.0)),
                gpus=float(res.get("GPU", 0.0)),
                memory=int(res.get("memory", 0)),
                object_store_memory=int(res.get("object_store_memory", 0)),
                resources=dict(res),
            )
        )
    return sorted(found, key=lambda n: (not n.head, n.address, n.id))


@dataclass(frozen=True)
class RayTask:
    """A task Ray reports as running: its name, and the node and process running it."""

    name: str
    node_id: str
    pid: int | None


def running_tasks(timeout_s: float = 5.0) -> list[RayTask] | None:
    """Tasks running now, from Ray's state API; None where it is not reachable (no dashboard)."""
    try:
        from ray.util.state import list_tasks

        found = list_tasks(
            filters=[("state", "=", "RUNNING")], timeout=int(max(1, timeout_s)), raise_on_missing_output=False
        )
    except Exception:
        return None
    return [RayTask(t.name or "", t.node_id or "", getattr(t, "worker_pid", None)) for t in found]


def driver_address() -> str:
    """The IP address of this process's host as the cluster knows it."""
    return str(import_ray().util.get_node_ip_address())


def check_shared_storage(settings: Settings) -> None:
    """Refuse stores that Ray workers on other hosts could not use (checked once per cluster shape).

    Raises:
        StorageNotShared: naming what is not shared and the settings to use instead.
    """
    alive = nodes()
    key = (settings.resolved_store_url, settings.resolved_artifacts_url, frozenset(n.id for n in alive))
    with _lock:
        if key in _checked:
            return
    here = driver_address()
    remote = [n for n in alive if n.address != here]
    if remote:
        problems = storage_problems(settings, remote, _probe_folder)
        if problems:
            hosts = ", ".join(sorted({n.address for n in remote}))
            raise StorageNotShared(
                f"This Ray cluster has nodes on other hosts ({hosts}), which cannot use this process's "
                f"stores: {'; '.join(problems)}. Then run again."
            )
    with _lock:
        _checked.add(key)


def storage_problems(settings: Settings, remote: list[NodeInfo], probe: Any) -> list[str]:
    """What nodes on other hosts could not use, each with the setting to fix it ([] when all is well).

    `probe(folder, remote)` returns the addresses of the nodes that cannot see `folder`.
    """
    problems = []
    store = settings.resolved_store_url
    everywhere_loopback = all(_loopback(n.address) for n in remote)
    if store.startswith("sqlite"):
        problems.append(
            f"the metadata store is the SQLite file {store.split(':///', 1)[-1]}, which only this host can "
            "open: set PLINTH_STORE=postgresql://USER:PASSWORD@HOST:5432/DB (a PostgreSQL server every "
            "node reaches)"
        )
    elif _loopback(urlsplit(store).hostname or "") and not everywhere_loopback:
        problems.append(
            f"the metadata store {_hide_password(store)} is on a loopback address, which means another "
            "machine on each node: set PLINTH_STORE to the database server's network address"
        )
    artifacts = settings.resolved_artifacts_url
    if "://" not in artifacts or artifacts.startswith("file://"):
        folder = artifacts.removeprefix("file://")
        blind = probe(folder, remote)
        if blind:
            problems.append(
                f"the artifact store is the folder {folder}, which nodes at {', '.join(sorted(blind))} "
                "cannot see: set PLINTH_ARTIFACTS=s3://BUCKET/PREFIX (with PLINTH_S3_ENDPOINT_URL for "
                "S3-compatible stores such as MinIO), or a folder shared by every node"
            )
    endpoint = settings.storage_options.get("endpoint_url", "")
    if endpoint and _loopback(urlsplit(endpoint).hostname or "") and not everywhere_loopback:
        problems.append(
            f"the object store endpoint {endpoint} is on a loopback address: set PLINTH_S3_ENDPOINT_URL "
            "to an address every node reaches"
        )
    return problems


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _probe_folder(folder: str, remote: list[NodeInfo]) -> list[str]:
    """Addresses of the `remote` hosts on which a task cannot read a marker written into `folder`."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    os.makedirs(folder, exist_ok=True)
    token = uuid.uuid4().hex
    marker = os.path.join(folder, f".plinth-probe-{token}")
    with open(marker, "w") as fh:
        fh.write(token)
    one_per_host = {n.address: n for n in remote}
    look = ray.remote(_read_marker)
    refs = {
        address: look.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False)
        ).remote(marker)
        for address, node in one_per_host.items()
    }
    try:
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        blind = []
        for address, ref in refs.items():
            try:
                seen = ref in ready and ray.get(ref) == token
            except Exception:
                seen = False
            if not seen:
                blind.append(address)
        return blind
    finally:
        os.unlink(marker)


def _read_marker(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""
