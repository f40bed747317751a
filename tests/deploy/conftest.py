"""Fixtures of the image tests: the Docker engine, the test base image, free ports, a local
registry, a registered scikit-learn model, and a janitor that removes what a test made.

Base images cannot be pulled here: builds pass `--base plinth-test-base:bookworm`, made from
Debian packages by scripts/test-services.sh. Containers are reached only through ports
published on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.core.entities import ModelVersion
from waiting import wait_until

BASE = "plinth-test-base:bookworm"
REGISTRY_BINARY = "/usr/bin/docker-registry"


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A docker-py client of the engine DOCKER_HOST names (the local socket by default)."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        pytest.fail(f"No Docker engine answered ({exc}); .ci/run starts dockerd.")
    return client


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The base the builds use, which the engine must already hold (nothing can be pulled)."""
    import docker.errors

    try:
        docker_client.images.get(BASE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"The engine has no {BASE}; scripts/test-services.sh builds it with debootstrap.")
    return BASE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    return _free_port()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on a free port of 127.0.0.1, storing in a temporary folder, for
    the session; yields its host ("127.0.0.1:PORT"), what image references start with."""
    if not Path(REGISTRY_BINARY).exists():
        pytest.fail(f"{REGISTRY_BINARY} is missing; install Debian's docker-registry package.")
    folder = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v2/"), "the registry to answer", timeout_s=30)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Janitor:
    """Containers, image references and images a test made, removed when it ends (passed or not)."""

    client: Any
    containers: list[Any] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)

    def tag(self, repository: str = "plinth-test/iris") -> str:
        """A fresh tag for this test (builds on two workers never share one), removed at the end."""
        reference = f"{repository}-{uuid.uuid4().hex[:10]}:1"
        self.references.append(reference)
        return reference

    def run(self, image: str, **kwargs: Any) -> Any:
        """`docker run -d` of `image`, removed at the end."""
        container = self.client.containers.run(image, detach=True, **kwargs)
        self.containers.append(container)
        return container

    def clean(self) -> None:
        import docker.errors

        for container in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        for reference in reversed(self.references):  # a tag: the image goes with its last one
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.images.remove(reference, noprune=True)
        for image_id in self.image_ids:  # an image a rebuild left untagged
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                self.client.images.remove(image_id, noprune=True)


@pytest.fixture
def janitor(docker_client: Any) -> Iterator[Janitor]:
    """What the test starts or tags, removed at its end."""
    made = Janitor(docker_client)
    try:
        yield made
    finally:
        made.clean()


@pytest.fixture
def iris() -> ModelVersion:
    """Model `iris` (a logistic regression over the four iris columns) in this test's fresh
    PLINTH_HOME, with alias `champion` on its only version."""
    x, y = load_iris(return_X_y=True, as_frame=True)
    mv = plinth.register_model("iris", LogisticRegression(max_iter=500).fit(x, y), input_example=x[:3])
    plinth.set_alias("iris", "champion", mv.version)
    return mv
