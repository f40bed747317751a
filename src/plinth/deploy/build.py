"""`plinth build`: an OCI image that serves one model version, or runs a flow's steps.

A model image holds the version's bundle (its verified bytes and record, served with no store),
plinth with its serving extra, and the model's flavor libraries with their dependencies at the
versions its lock recorded. It serves with `plinth serve` on port 8000 as a non-root user, has a
health check on /healthz, and carries labels naming the model, its version and its manifest's
sha256. The image is recorded on the version (tags and a lineage edge).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput
from plinth.deploy.dockerfile import (
    DEFAULT_PORT,
    FLOW_DIR,
    MODEL_DIR,
    ImageSpec,
    deps_dockerfile,
    dockerfile,
    local_dockerfile,
    write_context,
)
from plinth.deploy.engine import Built, Engine, Progress, split_reference
from plinth.deploy.lock import Lock, current_lock, lock_of_version
from plinth.deploy.records import IMAGE_TAG, BuiltImage, record_image
from plinth.deploy.wheelhouse import Wheelhouse, build_wheelhouse

LABEL_PREFIX = "dev.plinth."
SERVING_ROOT = "plinth[serve]"
FLOW_ROOT = "plinth"

Phase = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """What a build made, and how much of it was reused."""

    image: BuiltImage
    wheelhouse: Wheelhouse
    deps_image: str
    deps: Built | None  # None when the dependencies image was already there
    final: Built
    seconds: float

    @property
    def all_cached(self) -> bool:
        """True when nothing was resolved or built again: every layer came from the cache."""
        return self.wheelhouse.reused and self.deps is None and self.final.all_cached


def build_model_image(
    ref: str,
    *,
    tag: str | None = None,
    base: str | None = None,
    port: int = DEFAULT_PORT,
    push: str | None = None,
    phase: Phase | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build the serving image of a model version and record it on the version.

    Args:
        ref: NAME, NAME/VERSION or NAME@ALIAS.
        tag: the image's tag (default `plinth/NAME:VERSION`).
        base: the base image (default `python:X.Y-slim` of the model's Python).
        port: the port `plinth serve` listens on inside the image.
        push: REGISTRY/REPO to push to after the build (tagged with the version number).

    Raises:
        NotFound: no such model version.
        ResolutionError: its packages cannot be resolved; the message names them.
        EngineError: no engine, or the build or push failed.
    """
    from plinth.registry.bundle import write_bundle  # the registry's bytes: loaded when first used
    from plinth.registry.models import resolve
    from plinth.tracking.context import backend

    _check_port(port)
    _check_references(tag, push)
    started = time.perf_counter()
    say = phase or (lambda _text: None)
    be = backend()
    mv = resolve(ref, be)
    lock = _with_this_plinth(lock_of_version(mv))
    roots = [*_flavor_roots(mv), SERVING_ROOT]
    say(f"Resolving {len(roots)} packages for {mv.ref} (Python {lock.python_minor})")
    wheelhouse = build_wheelhouse(lock, roots)
    engine = Engine.connect()
    image_tag = tag or f"plinth/{_repo_name(mv.name)}:{mv.version}"
    _check_reference(image_tag, "--tag")
    base = base or f"python:{lock.python_minor}-slim"
    deps_image, deps = _deps_image(engine, base, lock.python_minor, wheelhouse, say, progress)
    labels = {
        "org.opencontainers.image.title": f"{mv.name} version {mv.version}",
        f"{LABEL_PREFIX}model.name": mv.name,
        f"{LABEL_PREFIX}model.version": str(mv.version),
        f"{LABEL_PREFIX}model.sha256": mv.digest,
        f"{LABEL_PREFIX}model.flavor": mv.flavor,
        f"{LABEL_PREFIX}python": lock.python_minor,
    }
    command = ("plinth", "serve", "--bundle", MODEL_DIR, "--host", "0.0.0.0", "--port", str(port))
    with tempfile.TemporaryDirectory(prefix="plinth-build-") as tmp:
        payload = os.path.join(tmp, "model")
        write_bundle(be, _without_image_tags(mv), payload)
        spec = ImageSpec(base, deps_image, payload, MODEL_DIR, command, port, "/healthz", labels)
        say(f"Building {image_tag}")
        final = _build(engine, dockerfile(spec), payload, image_tag, progress)
    image = _finish(engine, final, image_tag, push, mv.version, say)
    record_image(mv, image)
    return BuildResult(image, wheelhouse, deps_image, deps, final, time.perf_counter() - started)


def build_flow_image(
    path: str,
    *,
    tag: str | None = None,
    base: str | None = None,
    push: str | None = None,
    phase: Phase | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build an image that runs the flow in `path` with the packages it imports.

    The packages are the distributions of the modules the file imports (and plinth), with their
    dependencies, at the versions installed here; the file lands in /opt/plinth/flow and the
    image's command runs it. Give the image to steps with `@step(image=...)`.
    """
    _check_references(tag, push)
    started = time.perf_counter()
    say = phase or (lambda _text: None)
    source = _read_flow(path)
    lock = _with_this_plinth(current_lock())
    roots = sorted({FLOW_ROOT, *_imported_distributions(source, path)})
    say(f"Resolving {len(roots)} packages for {os.path.basename(path)} (Python {lock.python_minor})")
    wheelhouse = build_wheelhouse(lock, roots)
    engine = Engine.connect()
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha256(source.encode()).hexdigest()
    image_tag = tag or f"plinth/flow-{_repo_name(stem)}:{digest[:12]}"
    _check_reference(image_tag, "--tag")
    base = base or f"python:{lock.python_minor}-slim"
    deps_image, deps = _deps_image(engine, base, lock.python_minor, wheelhouse, say, progress)
    labels = {
        "org.opencontainers.image.title": f"flow {os.path.basename(path)}",
        f"{LABEL_PREFIX}flow.file": os.path.basename(path),
        f"{LABEL_PREFIX}flow.sha256": digest,
        f"{LABEL_PREFIX}python": lock.python_minor,
    }
    command = ("python", f"{FLOW_DIR}/{os.path.basename(path)}")
    with tempfile.TemporaryDirectory(prefix="plinth-build-") as tmp:
        payload = os.path.join(tmp, "flow")
        os.mkdir(payload)
        with open(os.path.join(payload, os.path.basename(path)), "w", encoding="utf-8") as out:
            out.write(source)
        spec = ImageSpec(base, deps_image, payload, FLOW_DIR, command, None, None, labels)
        say(f"Building {image_tag}")
        final = _build(engine, dockerfile(spec), payload, image_tag, progress)
    image = _finish(engine, final, image_tag, push, digest[:12], say)
    return BuildResult(image, wheelhouse, deps_image, deps, final, time.perf_counter() - started)


def _deps_image(
    engine: Engine, base: str, minor: str, wheelhouse: Wheelhouse, say: Phase, progress: Progress | None
) -> tuple[str, Built | None]:
    """The environment image for this base and wheelhouse, in two steps reused when the engine
    has them: the index packages, then the wheels built here (a change to those rebuilds only them)."""
    base_id = engine.image(base).image_id if engine.has_image(base) else base
    key = hashlib.sha256(f"{base_id}\0{os.path.basename(wheelhouse.folder)}".encode()).hexdigest()
    index_tag = f"plinth-deps:{key[:24]}"
    built: Built | None = None
    if not engine.has_image(index_tag):
        say(f"Installing {len(wheelhouse.requirements)} packages into {index_tag} (no network)")
        built = _build(engine, deps_dockerfile(base, minor), wheelhouse.folder, index_tag, progress, "wheels")
    local = sorted(os.path.basename(path) for path in wheelhouse.local.values())
    local_key = hashlib.sha256(f"{index_tag}\0{_digests(wheelhouse.local.values())}".encode()).hexdigest()
    deps_tag = f"plinth-deps:{local_key[:24]}"
    if engine.has_image(deps_tag):
        return deps_tag, built
    with tempfile.TemporaryDirectory(prefix="plinth-local-") as folder:
        for path in wheelhouse.local.values():
            shutil.copy2(path, folder)
        say(f"Installing {', '.join(local) or 'nothing more'} into {deps_tag}")
        local_built = _build(engine, local_dockerfile(index_tag, local), folder, deps_tag, progress, "local")
    return deps_tag, built or local_built


def _digests(paths: Iterable[str]) -> str:
    found = []
    for path in sorted(paths):
        with open(path, "rb") as handle:
            found.append(hashlib.file_digest(handle, "sha256").hexdigest())
    return ",".join(found)


def _build(
    engine: Engine, text: str, folder: str, tag: str, progress: Progress | None, prefix: str = "payload"
) -> Built:
    with tempfile.TemporaryFile(prefix="plinth-context-") as context:
        write_context(context, text, folder, prefix)
        context.seek(0)
        return engine.build(context, tag, progress=progress)


def _finish(
    engine: Engine, built: Built, tag: str, push: str | None, push_tag: object, say: Phase
) -> BuiltImage:
    info = engine.image(built.image_id)
    repo_digest = None
    if push is not None:
        repository, pushed_tag = split_reference(push)
        pushed_tag = pushed_tag if ":" in push.rsplit("/", 1)[-1] else str(push_tag)
        engine.tag(built.image_id, repository, pushed_tag)
        say(f"Pushing {repository}:{pushed_tag}")
        repo_digest = f"{repository}@{engine.push(repository, pushed_tag)}"
    tags = tuple(dict.fromkeys([tag, *info.tags]))
    return BuiltImage(built.image_id, tags, info.size_bytes, repo_digest, info.labels)


def _without_image_tags(mv: ModelVersion) -> ModelVersion:
    """`mv` as baked: without the tags a build records, which would change the next bake."""
    kept = {k: v for k, v in mv.tags.items() if k != IMAGE_TAG and not k.startswith(IMAGE_TAG + ".")}
    return dataclasses.replace(mv, tags=kept)


def _check_references(tag: str | None, push: str | None) -> None:
    if tag is not None:
        _check_reference(tag, "--tag")
    if push is not None:
        _check_reference(push, "--push")


def _flavor_roots(mv: ModelVersion) -> list[str]:
    libraries = (mv.environment or {}).get("libraries") or {}
    return sorted(_normalize(name) for name in libraries)


def _with_this_plinth(lock: Lock) -> Lock:
    """`lock` with plinth as installed here: the image runs the plinth that builds it."""
    here = current_lock()
    packages = dict(lock.packages)
    sources = dict(lock.sources)
    if "plinth" in here.packages:
        packages["plinth"] = here.packages["plinth"]
    sources.pop("plinth", None)
    if "plinth" in here.sources:
        sources["plinth"] = here.sources["plinth"]
    return dataclasses.replace(lock, packages=packages, sources=sources)


def _read_flow(path: str) -> str:
    if not path.endswith(".py") or not os.path.isfile(path):
        raise InvalidInput(f"--flow takes a Python file that defines a flow; {path!r} is not one.")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _imported_distributions(source: str, path: str) -> Iterable[str]:
    """The installed distributions that provide the top-level modules `source` imports."""
    import importlib.metadata

    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise InvalidInput(f"{path} is not valid Python (line {exc.lineno}): {exc.msg}.") from exc
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    providers = importlib.metadata.packages_distributions()
    found = set()
    for module in sorted(modules - set(sys.stdlib_module_names)):
        for dist in providers.get(module, ()):
            found.add(_normalize(dist))
    return found


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--port must be between 1 and 65535, got {port}.")


_REFERENCE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+|/[a-z0-9]+|:[0-9]+/[a-z0-9]+)*(?::[\w][\w.-]{0,127})?$")


def _check_reference(reference: str, option: str) -> None:
    if not _REFERENCE.match(reference):
        raise InvalidInput(
            f"{option} {reference!r} is not an image reference: use lowercase REPOSITORY[:TAG], "
            "e.g. registry.example.com:5000/team/churn:v3."
        )


def _repo_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return cleaned or "model"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
