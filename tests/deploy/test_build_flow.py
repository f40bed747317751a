"""`plinth build --flow FILE.py`: an image with the packages a flow imports, in which the flow
runs to the end with no network, its store in the container's PLINTH_HOME."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from k8s_checks import run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("docker")]  # one engine: builds take turns

FLOW = '''
"""A flow whose step needs numpy, run by the image built from this file."""

import numpy as np

import plinth
from plinth import flow, step


@step(image="IMAGE")
def total(n: int) -> float:
    return float(np.arange(n).sum())


@flow(name="in-image")
def pipeline(n: int = 5) -> float:
    return total(n)


if __name__ == "__main__":
    result = pipeline.run(n=5)
    [call] = result.steps
    print("result", result.result, plinth.get_run(call.id).tags["plinth.image"])
    raise SystemExit(0 if result.status is plinth.RunStatus.FINISHED else 1)
'''

HAS = (
    "import importlib.util, sys; "
    "print(*[name for name in sys.argv[1:] if importlib.util.find_spec(name) is not None])"
)


def finished(container: Any) -> tuple[int, str]:
    """Wait for `container` to exit: its exit code and output."""
    code = container.wait(timeout=180)["StatusCode"]
    return code, container.logs().decode()


def test_a_flow_image_runs_the_flow_with_no_network(
    capsys: Any, base_image: str, janitor: Any, docker_client: Any, tmp_path: Path
) -> None:
    tag = janitor.tag("plinth-test/flow")
    path = tmp_path / "tiny_flow.py"
    path.write_text(FLOW.replace("IMAGE", tag))

    result = run(capsys, "build", "--flow", str(path), "--base", base_image, "-t", tag, "--json")

    assert result.code == 0, result.err
    built = json.loads(result.out)
    janitor.image_ids.append(built["image_id"])
    assert built["labels"]["dev.plinth.flow.file"] == "tiny_flow.py"
    assert any(p.startswith("numpy==") for p in built["packages"])
    assert not any(p.startswith("scikit-learn==") for p in built["packages"])

    code, output = finished(janitor.run(built["image_id"], network_mode="none"))
    assert code == 0, output
    assert f"result 10.0 {tag}" in output  # the step ran, and its run recorded the image

    probe = janitor.run(
        built["image_id"], command=["python", "-c", HAS, "numpy", "plinth", "sklearn"], network_mode="none"
    )
    assert finished(probe) == (0, "numpy plinth\n")


def test_a_file_that_is_not_a_flow_is_refused(capsys: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not python")

    result = run(capsys, "build", "--flow", str(path), "--base", "plinth-test-base:bookworm")

    assert result.code == 2 and "--flow takes a Python file" in result.err
    assert "Traceback" not in result.err
