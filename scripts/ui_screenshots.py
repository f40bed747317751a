"""Take the README's screenshots of the web UI: run `plinth demo` in a fresh home, serve it with
`plinth ui`, and capture the main pages in Debian's Chromium (what a newcomer sees).

    .venv/bin/python scripts/ui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNG files")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    home = tempfile.mkdtemp(prefix="plinth-screens-")
    env = {**os.environ, "PLINTH_HOME": home, "PLINTH_USER": "ada"}
    plinth = str(Path(sys.executable).with_name("plinth"))
    subprocess.run([plinth, "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    server = subprocess.Popen([plinth, "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _capture_all(page, base, out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _capture_all(page: Page, base: str, out: Path) -> None:
    runs = _get(base, "/api/v1/ui/experiments/demo-digits/runs?order=-metrics.test_f1&page_size=25")["runs"]
    trained = [r for r in runs if "test_f1" in r["metrics"]]
    flows = _get(base, "/api/v1/ui/flow-runs")
    flow_id = flows["runs"][0]["id"]
    shots = [
        (
            "runs",
            "/experiments/demo-digits?columns=metrics.test_f1,metrics.test_accuracy,params.n_estimators,params.max_depth",
        ),
        ("run", f"/runs/{trained[0]['id']}?tab=metrics"),
        ("compare", "/compare?runs=" + ",".join(r["id"] for r in trained[:4])),
        ("model", "/models/digits-classifier/versions/1"),
        ("flow", f"/flows/{flow_id}"),
        ("deployment", "/deployments/digits-classifier?window=all"),
        ("lineage", "/lineage?kind=model&id=digits-classifier%40champion&direction=both"),
        ("audit", "/audit"),
    ]
    for name, path in shots:
        page.goto(base + path)
        page.wait_for_selector("main[data-ready=true]")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / f"{name}.png"), full_page=False)
        print(f"{out / name}.png  <- {path}")


def _get(base: str, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(base + path, timeout=30) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def _wait(base: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"plinth ui did not answer at {base}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
