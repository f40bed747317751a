"""`@step(image=...)`: the container image a step's environment comes from, recorded on its runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import plinth
from plinth.core.errors import InvalidInput
from plinth.flows.source import load_module
from plinth.tracking.context import Backend

FLOW = """
from plinth import flow, step


@step(image="registry.example.com:5000/team/features:v3")
def prepare(n: int) -> list[int]:
    return list(range(n))


@step
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="imaged")
def pipeline(n: int = 4) -> int:
    return total(prepare(n))
"""


def test_the_image_of_a_step_is_a_tag_of_each_of_its_runs(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "imaged.py").write_text(FLOW)
    result = load_module(str(tmp_path / "imaged.py")).pipeline.run(n=4)

    assert result.status is plinth.RunStatus.FINISHED and result.result == 6
    runs = {s.call: plinth.get_run(s.id) for s in result.steps}
    assert runs["prepare#0"].tags["plinth.image"] == "registry.example.com:5000/team/features:v3"
    assert "plinth.image" not in runs["total#0"].tags  # a step without an image records none


def test_an_image_by_digest_is_kept_as_written(tmp_path: Path) -> None:
    digest = "127.0.0.1:5000/flows/train@sha256:" + "ab" * 32
    (tmp_path / "by_digest.py").write_text(FLOW.replace("registry.example.com:5000/team/features:v3", digest))
    result = load_module(str(tmp_path / "by_digest.py")).pipeline.run(n=2)

    prepare = next(s for s in result.steps if s.call == "prepare#0")
    assert plinth.get_run(prepare.id).tags["plinth.image"] == digest


@pytest.mark.parametrize("image", ["", "   ", 42, "x" * 501])
def test_a_bad_image_is_refused_when_the_step_is_declared(image: Any) -> None:
    def work() -> None:
        return None

    with pytest.raises(InvalidInput, match="image must name a container image"):
        plinth.step(image=image)(work)
