"""What the benchmark scripts share: logging, the machine, virtualenvs, work folders, tables, RESULTS.md.

Standard library only at import time: side scripts that run under other virtualenvs import the
`bench_<topic>.py` scripts, which import this module.

A script's section of RESULTS.md has two parts: the generated one (date, command, machine, table,
notes with the measured numbers), rewritten by every full run, and the hand-written
"### How it is measured" part under it, which `write_results` keeps.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
METHOD_HEADING = "### How it is measured"
MLFLOW_VENV = HERE / ".venv-mlflow"
MLFLOW_PIN = "mlflow==3.17.2"  # 3.18 does not install here

Result = dict[str, Any]


# --------------------------------------------------------------------------- processes


def log(msg: str, who: str = "bench") -> None:
    print(f"[{who}] {msg}", file=sys.stderr, flush=True)


def last_json(stdout: str) -> Result | None:
    """The last line of `stdout` that is a JSON object (how every side script reports)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def clean_env(*prefixes: str) -> dict[str, str]:
    """This environment without the variables a side sets for itself (plinth, MLflow, and `prefixes`)."""
    drop = ("PLINTH_", "MLFLOW_", "PROMETHEUS_MULTIPROC_DIR", *prefixes)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def load_text() -> str:
    """The 1-minute load average, formatted; "?" where the platform has none."""
    load = loadavg()
    return "?" if load is None else f"{load:.2f}"


@contextlib.contextmanager
def work_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh folder under benchmarks/.work, removed afterwards unless `keep`."""
    WORK.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK))
    try:
        yield base
    finally:
        if keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- environment


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group `proc` leads (started with start_new_session=True), whatever
    is still in it, and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS and Python of this machine."""
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    mem = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{int(mem.split()[0]) / 1024**2:.1f} GiB" if mem else "?",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key) and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_line(info: dict[str, str]) -> str:
    return f"{info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}"


def ensure_venv(venv: Path, packages: list[str], probe: str) -> str:
    """The venv's python, creating the venv and installing `packages` unless `probe` runs there."""
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv} (first use)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode != 0:
        log(f"installing {' '.join(packages)} into {venv} (takes a few minutes)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return str(python)


def ensure_mlflow_venv() -> str:
    """benchmarks/.venv-mlflow's python, with MLflow installed (tracking, registry and serving use it)."""
    return ensure_venv(MLFLOW_VENV, [MLFLOW_PIN], "import mlflow")


def sklearn_spec() -> str:
    """scikit-learn pinned at this interpreter's version, so every side unpickles the same model."""
    try:
        return f"scikit-learn=={importlib.metadata.version('scikit-learn')}"
    except importlib.metadata.PackageNotFoundError:
        return "scikit-learn"


def ensure_sklearn(python: str) -> None:
    """Install scikit-learn into another venv if it has none."""
    if subprocess.run([python, "-c", "import sklearn"], capture_output=True, check=False).returncode != 0:
        spec = sklearn_spec()
        log(f"installing {spec} into {python}")
        subprocess.run([python, "-m", "pip", "install", "--quiet", spec], check=True)


def dist_version(python: str, dist: str) -> tuple[str, str]:
    """(version of `dist`, Python version) under `python`; "?" for what cannot be read."""
    code = f"import importlib.metadata as m, platform; print(m.version({dist!r}), platform.python_version())"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False).stdout.split()
    return (out[0], out[1]) if len(out) == 2 else ("?", "?")


# --------------------------------------------------------------------------- command line


def add_common_options(ap: argparse.ArgumentParser, quick: str, full_run: str, keep: str) -> None:
    """--quick, --write/--no-write and --keep, with each script's own wording."""
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"update RESULTS.md (default: only for {full_run})",
    )
    ap.add_argument("--keep", action="store_true", help=keep)


def parse_list(text: str | None, allowed: list[str], what: str) -> list[str]:
    """A comma-separated subset of `allowed`, in `allowed`'s order (all of it when `text` is empty)."""
    if not text:
        return list(allowed)
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return [a for a in allowed if a in items]


# --------------------------------------------------------------------------- tables and RESULTS.md


def print_table(body: list[list[str]], title: str, header: list[str], width: int = 132) -> None:
    """Print a results table (rich when available); rows whose verdict starts with NO are red."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        print(title)
        for r in [header, ["-" * w for w in widths], *body]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    t = Table(title=title)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        t.add_row(*r, style="red" if r[-1].startswith("NO") else None)
    # Piped output would otherwise wrap at 80 columns.
    Console(width=None if sys.stdout.isatty() else width).print(t)


def report(info: dict[str, str], note_lines: list[str], met: int | None = None, checked: int = 0) -> None:
    """Print what goes under the table on the console: the machine, the notes, the targets met."""
    print(f"{machine_line(info)}, Python {info['python']}")
    for n in note_lines:
        print(f"- {n}")
    if met is not None:
        print(f"targets met: {met}/{checked}")


def table_and_notes(header: list[str], body: list[list[str]], note_lines: list[str]) -> list[str]:
    """The markdown table and the notes of a RESULTS.md section (first column left, the rest right)."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if note_lines:
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in note_lines]
    return lines


def section(
    name: str,
    script: str,
    quick: bool,
    info: dict[str, str],
    versions: str,
    header: list[str],
    body: list[list[str]],
    note_lines: list[str],
) -> str:
    """The generated part of a "## NAME" section: date, command, machine and `versions`, table, notes."""
    lines = [
        f"## {name}",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Command: `python benchmarks/{script}{' --quick' if quick else ''}`.",
        "",
        f"Machine: {machine_line(info)}; {versions}.",
        "",
        *table_and_notes(header, body, note_lines),
    ]
    return "\n".join(lines) + "\n"


def finish(write: bool, make_section: Callable[[], str], name: str, failed: list[str]) -> int:
    """Write the section into RESULTS.md when asked, say so, and give the exit status."""
    if write:
        write_results(make_section(), name)
        print(f"wrote the '{name}' section of {RESULTS.relative_to(HERE.parent)}")
    else:
        print("RESULTS.md not updated (quick, partial or failed run; --write forces it)")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def write_results(generated: str, name: str) -> None:
    """Replace (or append) the "## NAME" section of RESULTS.md, keeping the other sections and
    this section's "### How it is measured" part."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(name)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    old = pattern.search(text)
    if old is None:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + generated)
        return
    new = generated
    kept = re.search(rf"^{re.escape(METHOD_HEADING)}[ \t]*\n.*", old.group(0), re.S | re.M)
    if kept:
        new = new.rstrip("\n") + "\n\n" + kept.group(0).rstrip("\n") + "\n"
    text = text[: old.start()] + new + "\n" + text[old.end() :]
    RESULTS.write_text(text.rstrip("\n") + "\n")
