"""The run page in Chromium: values, charts of downsampled series, artifacts previewed safely, datasets."""

from __future__ import annotations

import json
import platform
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth.core.access import Role
from plinth.server.views.artifacts import attachment, csv_head, kind_of
from plinth.server.views.common import downsample
from plinth.tracking.environment import clear_cache
from team_servers import ThreadServer
from ui.conftest import sign_in

BIG = 50_000
HTML = (
    "<h1>Report</h1><p id='marker'>static</p>"
    "<script>document.getElementById('marker').textContent = 'ran';"
    "parent.document.title = 'pwned'; new Image().src = '/steal?c=' + document.cookie;</script>"
)
SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' width='80' height='40'>"
    "<rect width='80' height='40' fill='teal'/>"
    "<script>parent.document.title = 'pwned'</script></svg>"
)


def png(width: int = 8, height: int = 6) -> bytes:
    """A small valid RGB PNG."""
    rows = b"".join(b"\0" + bytes([40, 120, 200]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def big_series() -> np.ndarray:
    values = np.sin(np.arange(BIG) / 700.0)
    values[12_345] = 40.0
    values[43_210] = -55.0
    return values


def fill(tmp: Path) -> str:
    """One finished run with params, tags, metrics (one of BIG points), a dataset and artifacts."""
    files = {
        "plots/curve.png": png(),
        "preds.csv": pd.DataFrame({"id": range(120), "label": ["cat", "dog"] * 60})
        .to_csv(index=False)
        .encode(),
        "config.json": json.dumps({"lr": 0.01, "layers": [64, 32]}).encode(),
        "logs/train.txt": b"epoch 1 loss 0.9\nepoch 2 loss 0.5\n",
        "reports/report.html": HTML.encode(),
        "reports/diagram.svg": SVG.encode(),
    }
    params = {"lr": 0.01, "optimizer": "adam"}
    with plinth.start_run(
        "vision", name="resnet", params=params, tags={"team": "eyes"}, system_metrics=False
    ) as run:
        for step in range(30):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5 + step / 100}, step=step)
        run.log_metric_points("grad_norm", big_series())
        run.log_metric_points("system/cpu_utilization", [12.0, 80.0, 55.0])
        run.log_metric_points("system/wall_hours", [0.001, 0.002, 0.003])
        run.log_metric_points("system/cpu_hours", [0.002, 0.004, 0.006])
        frame = pd.DataFrame(
            {"petal": np.linspace(0.1, 2.5, 150), "species": ["setosa", "versicolor", "virginica"] * 50}
        )
        run.log_dataset(frame, "iris-train")
        for name, data in files.items():
            path = tmp / name.replace("/", "_")
            path.write_bytes(data)
            run.log_artifact(str(path), name)
        frame.head(120).to_parquet(tmp / "table.parquet")
        run.log_artifact(str(tmp / "table.parquet"), "table.parquet")
        return run.id


def ready(page: Any) -> None:
    page.wait_for_selector("main[data-page=run][data-ready=true]")


def open_run(page: Any, server: ThreadServer, run_id: str, query: str = "") -> None:
    page.goto(f"{server.url}/runs/{run_id}{query}")
    ready(page)


def metric_cards(page: Any) -> list[str]:
    names: list[str] = page.locator("[data-testid=metric-card]").evaluate_all(
        "cs => cs.map(c => c.dataset.metric)"
    )
    return sorted(names)


# ---- without a browser ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1999, 2000, 2001, 50_000, 123_457])
def test_downsample_keeps_every_extreme_and_both_ends(n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.normal(size=n)
    y[rng.integers(n)] = 100.0
    y[rng.integers(n)] = -100.0
    x = np.arange(n) * 10
    xs, ys = downsample(x, y, 2000)
    assert len(ys) <= 2000
    assert ys.max() == y.max() and ys.min() == y.min()
    assert xs[0] == 0 and xs[-1] == x[-1]
    assert np.all(np.diff(xs) > 0), "points stay in order"
    assert np.array_equal(ys, y[xs // 10]), "each kept point is a real point"


def test_downsample_never_picks_nan_as_an_extreme() -> None:
    y = np.linspace(0, 1, 10_000)
    y[::3] = np.nan
    _, ys = downsample(np.arange(10_000), y, 100)
    finite = ys[~np.isnan(ys)]
    assert finite.min() == np.nanmin(y) and finite.max() == np.nanmax(y)
    assert np.isnan(ys).sum() == 2  # the first and the last point (both NaN here), kept as they are


def test_a_csv_head_cut_inside_a_row_drops_that_row() -> None:
    text = "a,b\n" + "".join(f"{i},x{i}\n" for i in range(100))
    head = csv_head(text.encode()[:60], size=len(text))
    assert head["columns"] == ["a", "b"]
    assert all(len(row) == 2 and row[1] == f"x{row[0]}" for row in head["rows"])
    assert head["total_rows"] is None
    whole = csv_head(text.encode(), size=len(text))
    assert len(whole["rows"]) == 50 and whole["total_rows"] == 100


def test_kinds_and_attachment_names() -> None:
    paths = ("a/b.PNG", "r.html", "d.svg", "t.csv", "t.pq", "c.json", "x.log", "model.bin")
    kinds = ["image", "html", "svg", "csv", "parquet", "json", "text", "file"]
    assert [kind_of(p) for p in paths] == kinds
    assert (
        attachment('ré"sumé.txt')
        == "attachment; filename=\"r__sum_.txt\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9.txt"
    )


# ---- in Chromium -----------------------------------------------------------------------------


def test_overview_shows_params_tags_status_and_code_version(
    page: Any, ui_server: ThreadServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text("print('train')\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo / "train.py").write_text("print('changed')\n")  # uncommitted: the run is dirty
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(repo / "train.py"), raising=False)
    clear_cache()
    try:
        run_id = fill(tmp_path)
    finally:
        clear_cache()

    open_run(page, ui_server, run_id)
    params = page.locator("[data-testid=params]")
    assert params.locator("tr[data-key=lr]").inner_text().split() == ["lr", "0.01"]
    assert params.locator("tr[data-key=optimizer]").inner_text().split() == ["optimizer", "adam"]
    assert page.locator("[data-testid=tags] tr[data-key=team]").inner_text().split() == ["team", "eyes"]
    assert page.locator("[data-testid=run-status] [data-status]").inner_text() == "FINISHED"
    info = page.locator("[data-testid=run-info]").inner_text()
    assert run_id in info and "tester" in info
    assert page.locator("[data-testid=experiment-link]").get_attribute("href") == "/experiments/vision"
    assert page.locator("[data-testid=latest-metrics] tr[data-key=acc]").inner_text().split() == [
        "acc",
        "0.79",
    ]
    assert page.locator("[data-testid=git-commit]").inner_text() == commit
    assert page.locator("[data-testid=git-dirty]").inner_text().startswith("yes")
    assert f"CPython {platform.python_version()}" in page.locator("[data-testid=environment]").inner_text()
    page.locator("[data-testid=packages] summary").click()
    page.locator("input[name=package-filter]").fill("numpy")
    assert page.locator("[data-testid=packages] tbody tr").first.inner_text().split()[0] == "numpy"
    assert page.title() == "resnet · plinth"


def test_metric_charts_draw_series_cut_down_on_the_server(
    page: Any, ui_server: ThreadServer, tmp_path: Path
) -> None:
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=metrics")
    charts = page.locator("[data-testid=charts] [data-testid=chart]")
    assert metric_cards(page) == ["acc", "grad_norm", "loss"]
    assert charts.count() == 3
    assert (
        charts.evaluate_all("cs => cs.map(c => [c.dataset.series, c.dataset.ready])") == [["1", "true"]] * 3
    )
    counted = page.locator("[data-metric=grad_norm] [data-testid=point-count]").inner_text()
    assert counted.startswith("50,000 points") and "drawn" in counted

    answer = page.request.get(f"{ui_server.url}/api/v1/ui/runs/{run_id}/metric", params={"key": "grad_norm"})
    assert answer.ok
    doc = answer.json()
    expected = big_series()
    assert doc["count"] == BIG and len(doc["value"]) == doc["points"] <= 2000
    assert len(doc["step"]) == len(doc["time_ms"]) == len(doc["value"])
    assert max(doc["value"]) == expected.max() == 40.0 and min(doc["value"]) == expected.min() == -55.0
    assert (
        doc["step"][doc["value"].index(40.0)] == 12_345 and doc["step"][doc["value"].index(-55.0)] == 43_210
    )
    assert doc["step"][0] == 0 and doc["step"][-1] == BIG - 1


def canvas(page: Any, metric: str, unlike: str = "") -> str:
    """The chart of `metric` as a PNG data URL, once it is drawn (and differs from `unlike`)."""
    where = f"[data-metric='{metric}'] [data-testid=chart][data-ready=true] canvas"
    page.wait_for_function(
        "([where, unlike]) => (document.querySelector(where)?.toDataURL() ?? unlike) !== unlike",
        arg=[where, unlike],
    )
    drawn: str = page.locator(where).evaluate("c => c.toDataURL()")
    return drawn


def test_axis_smoothing_and_log_scale_redraw_the_charts(
    page: Any, ui_server: ThreadServer, tmp_path: Path
) -> None:
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=metrics")
    plain = canvas(page, "loss")

    page.locator("input[name=smoothing]").fill("0.9")
    assert page.locator("[data-testid=smoothing-value]").inner_text() == "0.90"
    smoothed = canvas(page, "loss", unlike=plain)
    page.locator("input[name=log-scale]").check()
    logged = canvas(page, "loss", unlike=smoothed)
    page.locator("input[name=log-scale]").uncheck()
    page.locator("input[name=smoothing]").fill("0")
    # two redraws follow (log scale off, then smoothing off): wait for the last one, not the first
    where = "[data-metric='loss'] [data-testid=chart][data-ready=true] canvas"
    page.wait_for_function(
        "([where, plain]) => document.querySelector(where)?.toDataURL() === plain", arg=[where, plain]
    )
    assert canvas(page, "loss", unlike=logged) == plain, "back to the same settings, the same drawing"

    for axis, label in (("relative", "time since start (s)"), ("wall", "wall clock time"), ("step", "step")):
        page.locator("select[name=x-axis]").select_option(axis)
        legend = page.locator("[data-metric=loss] .u-legend")
        legend.filter(has_text=label).wait_for()
    assert page.locator("[data-testid=chart][data-ready=true]").count() == 3


def test_failed_and_killed_runs_show_their_reason(page: Any, ui_server: ThreadServer) -> None:
    with pytest.raises(RuntimeError), plinth.start_run("vision", name="oom", system_metrics=False) as run:
        failed = run.id
        raise RuntimeError("CUDA out of memory while allocating 2.00 GiB")
    killed_run = plinth.start_run("vision", name="preempted", system_metrics=False)
    killed_run.end("KILLED", "preempted by the scheduler")

    open_run(page, ui_server, failed)
    assert page.locator("[data-testid=run-status] [data-status]").inner_text() == "FAILED"
    assert (
        page.locator("[data-testid=run-error]").inner_text()
        == "RuntimeError: CUDA out of memory while allocating 2.00 GiB"
    )
    open_run(page, ui_server, killed_run.id)
    assert page.locator("h1 [data-status]").inner_text() == "KILLED"
    assert page.locator("[data-testid=run-error]").inner_text() == "preempted by the scheduler"


def test_html_and_svg_artifacts_render_only_in_a_sandbox(
    page: Any, ui_server: ThreadServer, tmp_path: Path, console: Any
) -> None:
    console.allow("Blocked script execution")  # Chromium says so for the sandboxed frame's script
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=artifacts&path=reports%2Freport.html")
    frame = page.locator("iframe[data-testid=preview-frame]")
    assert frame.get_attribute("sandbox") == ""
    inside = page.frame_locator("iframe[data-testid=preview-frame]")
    inside.locator("h1").filter(has_text="Report").wait_for()
    assert inside.locator("#marker").inner_text() == "static", "the artifact's script ran"
    assert page.title() == "resnet · plinth"

    raw = page.request.get(ui_server.url + frame.get_attribute("src"))
    assert raw.text() == HTML
    headers = raw.headers
    assert headers["content-security-policy"] == (
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    )
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"].startswith("text/html")

    page.locator("button[data-path='reports/diagram.svg']").click()
    page.wait_for_url("**path=reports%2Fdiagram.svg*")
    svg = page.locator("iframe[data-testid=preview-frame]")
    page.wait_for_function(
        "() => document.querySelector('iframe[data-testid=preview-frame]')?.src.includes('diagram.svg')"
    )
    assert svg.get_attribute("sandbox") == ""
    page.frame_locator("iframe[data-testid=preview-frame]").locator("rect").wait_for(state="attached")
    assert page.title() == "resnet · plinth"


def test_tables_json_text_and_images_are_previewed(
    page: Any, ui_server: ThreadServer, tmp_path: Path
) -> None:
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=artifacts")
    tree = page.locator("[data-testid=artifact-tree]")
    assert "7 files" in tree.inner_text()
    assert tree.locator("[data-folder=reports]").count() == 1

    for path, header, first in (
        ("preds.csv", ["id", "label"], ["0", "cat"]),
        ("table.parquet", ["petal", "species"], ["0.1", "setosa"]),
    ):
        tree.locator(f"button[data-path='{path}']").click()
        preview = page.locator(f"[data-testid=artifact-preview][data-path='{path}'][data-ready=true]")
        preview.wait_for()
        assert preview.locator("[data-testid=preview-rows]").inner_text() == "50 of 120 rows · 2 columns"
        table = preview.locator("[data-testid=preview-table]")
        assert table.locator("th").all_inner_texts() == header
        assert table.locator("tbody tr").count() == 50
        assert table.locator("tbody tr").first.inner_text().split() == first

    tree.locator("button[data-path='config.json']").click()
    text = page.locator("[data-path='config.json'] [data-testid=preview-text]")
    assert json.loads(text.inner_text()) == {"lr": 0.01, "layers": [64, 32]}
    assert '\n  "lr": 0.01' in text.inner_text()

    tree.locator("button[data-path='logs/train.txt']").click()
    log = page.locator("[data-path='logs/train.txt'] [data-testid=preview-text]")
    assert log.inner_text() == "epoch 1 loss 0.9\nepoch 2 loss 0.5\n"

    tree.locator("button[data-path='plots/curve.png']").click()
    image = page.locator("img[data-testid=preview-image]")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('img[data-testid=preview-image]')?.naturalWidth > 0")
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [8, 6]


def test_download_answers_an_attachment(page: Any, ui_server: ThreadServer, tmp_path: Path) -> None:
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=artifacts&path=preds.csv")
    link = page.locator("[data-testid=download]")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "preds.csv"
    assert Path(download.path()).read_bytes().startswith(b"id,label\n0,cat\n")

    answer = page.request.get(ui_server.url + link.get_attribute("href"))
    assert answer.headers["content-disposition"].startswith('attachment; filename="preds.csv"')
    assert answer.headers["content-type"] == "application/octet-stream"
    assert (
        answer.body()
        == pd.DataFrame({"id": range(120), "label": ["cat", "dog"] * 60}).to_csv(index=False).encode()
    )


def test_datasets_and_system_tabs(page: Any, ui_server: ThreadServer, tmp_path: Path) -> None:
    run_id = fill(tmp_path)
    open_run(page, ui_server, run_id, "?tab=datasets")
    card = page.locator("[data-testid=dataset][data-dataset='iris-train/1']")
    assert "used: train" in card.inner_text()
    assert "150" in card.inner_text()
    profile = card.locator("[data-testid=dataset-profile] tbody tr")
    assert [r.split("\t")[0] for r in profile.all_inner_texts()] == ["petal", "species"]
    assert "min 0.1" in profile.first.inner_text() and "max 2.5" in profile.first.inner_text()
    assert "3 distinct" in profile.nth(1).inner_text()

    page.locator("button[data-tab=system]").click()
    page.wait_for_url("**tab=system*")
    ready(page)
    assert page.locator("[data-testid=chart]").count() == 3
    assert metric_cards(page) == ["system/cpu_hours", "system/cpu_utilization", "system/wall_hours"]
    cost = page.locator("[data-testid=cost]").inner_text()
    assert "yes (sampled while it ran)" in cost and "10.8 s" in cost  # 0.003 wall hours


def test_an_unknown_run_says_so(page: Any, ui_server: ThreadServer, console: Any) -> None:
    console.allow("status of 404")
    page.goto(f"{ui_server.url}/runs/no-such-run")
    ready(page)
    error = page.locator("[data-testid=error]").inner_text()
    assert error.startswith("Not found") and "No run with id 'no-such-run'" in error


def test_a_viewer_reads_the_run_and_downloads_its_files(
    page: Any, ui_server_factory: Any, tmp_path: Path
) -> None:
    run_id = fill(tmp_path)
    server = ui_server_factory(local=False)
    sign_in(page, server, server.issue("vera", Role.VIEWER))
    open_run(page, server, run_id, "?tab=artifacts&path=config.json")
    page.locator("[data-testid=preview-text]").wait_for()
    href = page.locator("[data-testid=download]").get_attribute("href")
    assert "workspace=default" in href
    assert page.request.get(server.url + href).body() == json.dumps({"lr": 0.01, "layers": [64, 32]}).encode()
    assert (
        page.request.get(
            f"{server.url}/api/v1/ui/runs/{run_id}/artifacts/raw?path=config.json&workspace=other"
        ).status
        == 403
    )


def test_links_mlflow_prints_open_plinth_pages(page: Any, ui_server: ThreadServer, tmp_path: Path) -> None:
    # MLflow's client ends a run with "View run at: http://server/#/experiments/ID/runs/RUN"
    run_id = fill(tmp_path)
    experiment_id = plinth.get_run(run_id).experiment_id
    page.goto(f"{ui_server.url}/#/experiments/{experiment_id}/runs/{run_id}")
    ready(page)
    assert page.evaluate("location.pathname") == f"/runs/{run_id}"
    assert run_id in page.locator("[data-testid=run-info]").inner_text()
    page.goto(f"{ui_server.url}/#/experiments/{experiment_id}")
    page.wait_for_selector("main[data-page=runs][data-ready=true]")
    assert page.evaluate("location.pathname") == f"/experiments/{experiment_id}"
