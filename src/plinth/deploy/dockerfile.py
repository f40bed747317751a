"""The Dockerfile and build context of a plinth image.

Two images: a dependencies image makes a virtual environment from the wheelhouse with no index
(the build runs with no network) and is tagged by what went into it, so it is built once per
base and set of wheels; the image itself copies that environment onto a clean base beside a
non-root user and the payload (a model bundle, or a flow's folder). Its layers are ordered from
what changes least to what changes most (environment, payload, labels), and each context is a
tar with fixed owners and times, so a rebuild with nothing changed reuses every layer, sends
only the payload to the engine, and a new model version with the same packages rebuilds only
its own layers.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

VENV = "/opt/plinth/venv"
MODEL_DIR = "/opt/plinth/model"
FLOW_DIR = "/opt/plinth/flow"
HOME = "/home/plinth"
UID = 10001
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ImageSpec:
    """What goes into an image besides its wheels."""

    base: str
    deps_image: str  # the dependencies image (`deps_dockerfile`) whose environment it copies
    payload: str  # the folder copied into the image (a model bundle or a flow's folder)
    payload_dir: str  # where it lands: MODEL_DIR or FLOW_DIR
    command: tuple[str, ...]
    port: int | None = DEFAULT_PORT
    health_path: str | None = "/healthz"
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


def deps_dockerfile(base: str, python_minor: str) -> str:
    """The index packages' image: `base` with the wheelhouse (context `wheels/`) installed in VENV."""
    major, minor = python_minor.split(".")
    check = (
        "import sys; v = sys.version_info[:2]; "
        f"sys.exit(0 if v == ({major}, {minor}) else "
        f"'The base image runs Python %d.%d but the image needs Python {python_minor}: '"
        f"'pass --base with an image of Python {python_minor}.' % v)"
    )
    install = (
        f"python3 -m venv {VENV} && "
        f"{VENV}/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check "
        "--find-links /tmp/wheels -r /tmp/wheels/requirements.txt"
    )
    lines = [
        f"FROM {base}",
        f"RUN [{_q('python3')}, {_q('-c')}, {_q(check)}]",
        "COPY wheels/ /tmp/wheels/",
        f"RUN {install}",
    ]
    return "\n".join(lines) + "\n"


def local_dockerfile(deps_base: str, wheels: list[str]) -> str:
    """The environment an image copies: `deps_base` with the wheels built here from local
    sources (context `local/`) installed, and pip removed."""
    lines = [f"FROM {deps_base}"]
    if wheels:
        paths = " ".join(f"/tmp/local/{name}" for name in sorted(wheels))
        lines += [
            "COPY local/ /tmp/local/",
            f"RUN {VENV}/bin/python -m pip install --no-index --no-deps --no-cache-dir "
            f"--disable-pip-version-check {paths}",
        ]
    lines.append(f"RUN {VENV}/bin/python -m pip uninstall --yes --quiet pip")
    return "\n".join(lines) + "\n"


def dockerfile(spec: ImageSpec) -> str:
    """The image's Dockerfile (the context holds `payload/`)."""
    user = (
        f"echo 'plinth:x:{UID}:{UID}:plinth:{HOME}:/usr/sbin/nologin' >> /etc/passwd && "
        f"echo 'plinth:x:{UID}:' >> /etc/group && "
        f"mkdir -p {HOME}/.plinth && chown -R {UID}:{UID} {HOME}"
    )
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": HOME,
        "PLINTH_HOME": f"{HOME}/.plinth",
        **spec.env,
    }
    lines = [
        f"FROM {spec.base}",
        f"RUN {user}",
        f"COPY --from={spec.deps_image} {VENV} {VENV}",
        "ENV " + " ".join(f"{k}={_q(v)}" for k, v in env.items()),
        f"COPY payload/ {spec.payload_dir}/",
        f"WORKDIR {spec.payload_dir if spec.payload_dir == FLOW_DIR else HOME}",
    ]
    if spec.port is not None:
        lines.append(f"EXPOSE {spec.port}")
    if spec.port is not None and spec.health_path is not None:
        probe = (
            "import sys, urllib.request; "
            f"urllib.request.urlopen('http://127.0.0.1:{spec.port}{spec.health_path}', timeout=2)"
        )
        lines.append(
            "HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 "
            f"CMD [{_q(VENV + '/bin/python')}, {_q('-c')}, {_q(probe)}]"
        )
    if spec.labels:
        lines.append("LABEL " + " ".join(f"{_q(k)}={_q(v)}" for k, v in sorted(spec.labels.items())))
    lines += [f"USER {UID}:{UID}", "CMD " + json.dumps(list(spec.command))]
    return "\n".join(lines) + "\n"


def write_context(out: IO[bytes], text: str, folder: str, prefix: str) -> None:
    """Write a build context to `out`: the Dockerfile `text` and `folder` under `prefix/`, with
    fixed owners, modes and times so the same inputs give the same bytes."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "Dockerfile", text.encode())
        for rel, path in _files(folder, prefix):
            _add_file(tar, rel, path)


def _files(root: str, prefix: str) -> Iterator[tuple[str, str]]:
    for top, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            yield f"{prefix}/{os.path.relpath(path, root)}", path


def _info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data), 0o644), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: str) -> None:
    mode = 0o755 if os.access(path, os.X_OK) else 0o644
    with open(path, "rb") as handle:
        tar.addfile(_info(name, os.fstat(handle.fileno()).st_size, mode), handle)


def _q(text: str) -> str:
    """A JSON string: valid quoting for Dockerfile exec forms, ENV and LABEL values."""
    return json.dumps(text)
