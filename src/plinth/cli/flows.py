"""`plinth flows`: run, list, inspect and resume flows; read what their steps printed."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from plinth.cli import render
from plinth.cli.options import executor_option, limit_option, ray_address_option
from plinth.cli.progress import flow_progress
from plinth.cli.render import console, duration, say, size, table, when
from plinth.core.entities import FlowRun, RunStatus, StepRun
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import now_ms

if TYPE_CHECKING:
    from plinth.flows.flow import Flow, FlowResult

JOB_LOG_TAIL = 256 * 1024
"""Most bytes of a SLURM job's log that `plinth flows logs` prints (its end)."""


@click.group("flows", short_help="Run, list, inspect, resume flows; read step logs.")
def flows() -> None:
    """Flows: Python workflows of @step functions, run in local processes, on Ray or SLURM, and tracked."""


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param {pair!r}: use NAME=VALUE, e.g. --param lr=0.1.")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def find_flow(target: str) -> Flow[..., Any]:
    """The flow named by FILE.py[:NAME] or module:NAME (the only flow in the file when no NAME)."""
    from plinth.flows.flow import Flow
    from plinth.flows.source import load_module, load_object

    if ":" in target and not target.endswith(".py"):
        found = load_object(target)
    else:
        module = load_module(target)
        flows_in = [v for v in vars(module).values() if isinstance(v, Flow)]
        if len(flows_in) != 1:
            names = ", ".join(sorted(f.fn.__name__ for f in flows_in)) or "none"
            raise InvalidInput(
                f"{target} defines {len(flows_in)} flows ({names}); name one as {target}:NAME."
            )
        found = flows_in[0]
    if not isinstance(found, Flow):
        raise InvalidInput(f"{target} is not a @flow.")
    return found


@flows.command("run", short_help="Run a flow from a file or module, showing its steps live.")
@click.argument("target")
@click.option("--param", "-p", "params", multiple=True, help="A flow parameter NAME=VALUE (JSON or text).")
@executor_option(default=None, shown="the flow's own")
@ray_address_option
def flows_run(target: str, params: tuple[str, ...], executor: str | None, ray_address: str | None) -> None:
    """Run the flow in TARGET (FILE.py, FILE.py:NAME or module:NAME) and show its steps live."""
    chosen = find_flow(target)
    with flow_progress(f"flow {chosen.name}") as observer:
        result = chosen.run(
            raise_on_failure=False,
            observer=observer,
            executor=executor,
            ray_address=ray_address,
            **_parse_params(params),
        )
    _summary(result)


@flows.command("resume", short_help="Run a flow run again, reusing every step call that finished.")
@click.argument("run_id")
@executor_option(default=None, shown="the one the run used")
@ray_address_option
@click.option(
    "--force",
    is_flag=True,
    help="Mark a run still recorded as running CRASHED and resume it, even if its driver may be alive.",
)
def flows_resume(run_id: str, executor: str | None, ray_address: str | None, force: bool) -> None:
    """Run RUN_ID's flow again with its params, reusing every step call that finished.

    A run whose driver was killed on this host is marked CRASHED and resumed at once. One whose
    driver ran on another host, or in another container (PID namespace) or boot of this one, is
    CRASHED once that driver misses three heartbeats; --force
    resumes it before that (use it only when you know the driver is gone).
    """
    from plinth.flows.flow import resume_flow

    with flow_progress(f"resuming {run_id}") as observer:
        result = resume_flow(
            run_id,
            raise_on_failure=False,
            observer=observer,
            executor=executor,
            ray_address=ray_address,
            force=force,
        )
    _summary(result)


def _summary(result: FlowResult[Any]) -> None:
    run: FlowRun = result.flow_run
    _steps_table(result.steps, f"Flow {run.flow} {run.id}")
    if run.error:
        render.error(run.error)
        raise click.exceptions.Exit(1)
    value = repr(result.result)
    say(
        f"{run.status.value} in {duration((run.end_ms or 0) / 1000 - run.start_ms / 1000)}; result: "
        f"{value[:300] + '…' if len(value) > 300 else value}"
    )
    say(f"Details: plinth flows show {run.id}")


def _steps_table(steps: list[StepRun], title: str) -> None:
    rows = [
        (
            s.call,
            s.status.value,
            s.attempts,
            duration(s.duration_s),
            s.reused_from or "",
            (s.error or "")[:80],
        )
        for s in steps
    ]
    console.print(table(title, ["call", "status", "attempts", "time", "reused from", "error"], rows))


@flows.command("list")
@click.option("--flow", "flow_name", default=None, help="Only runs of this flow.")
@limit_option(default=20)
def flows_list(flow_name: str | None, limit: int) -> None:
    """List flow runs, newest first."""
    from plinth.tracking.context import backend

    found = backend().store.list_flow_runs(flow_name, limit or None)
    if not found:
        say("No flow runs yet; start one with `plinth flows run FILE.py`.")
        return
    rows = [
        (
            r.id,
            r.flow,
            r.status.value,
            when(r.start_ms),
            duration((r.end_ms - r.start_ms) / 1000 if r.end_ms else None),
            r.resumed_from or "",
        )
        for r in found
    ]
    console.print(table("Flow runs", ["id", "flow", "status", "started", "time", "resumed from"], rows))


@flows.command("show", short_help="Show a flow run: params, status and every step call.")
@click.argument("run_id")
def flows_show(run_id: str) -> None:
    """Show a flow run: params, status, and every step call with status, attempts and time."""
    from plinth.tracking.context import backend

    be = backend()
    run = be.store.get_flow_run(run_id)
    say(
        f"Flow {run.flow}  run {run.id}  {run.status.value}  started {when(run.start_ms)}"
        f"  source {run.source}"
    )
    say(f"params {json.dumps(run.params)}")
    if run.driver_pid is not None:
        say(f"driver pid {run.driver_pid} on {run.driver_host}{_driver_state(be, run)}")
    if run.resumed_from:
        say(f"resumed from {run.resumed_from}")
    if run.error:
        say(f"error: {run.error}")
    steps = be.store.step_runs(run_id)
    _steps_table(steps, "Steps")
    for step in steps:
        if step.usage.get("ranks"):
            _ranks_table(step)


def _ranks_table(step: StepRun) -> None:
    """The ranks of a distributed step's latest attempt: where each ran and how it ended."""
    ranks = step.usage["ranks"]
    rows = [
        (
            r.get("rank", ""),
            r.get("worker", ""),
            r.get("outcome", ""),
            duration(r.get("wall_s")),
            duration(r.get("cpu_s")),
            size(r.get("max_rss") or 0),
            ",".join(str(g) for g in r.get("gpus") or []) or "",
            (r.get("error") or "")[:80],
        )
        for r in ranks
    ]
    title = f"Group {step.call}: {len(ranks)} workers, attempt {step.attempts}"
    columns = ["rank", "worker", "state", "time", "cpu time", "peak memory", "gpus", "error"]
    console.print(table(title, columns, rows))


def _driver_state(be: Any, run: FlowRun) -> str:
    """What this host can tell of a running flow run's driver, as a suffix of its line."""
    from plinth.flows.liveness import check_driver

    if run.status is not RunStatus.RUNNING:
        return ""
    check = check_driver(run, be.store.get_run(run.id), now_ms())
    if check.verdict == "alive":
        return " (alive)"
    if check.verdict == "gone":
        return " (gone: `plinth flows resume` marks the run CRASHED and resumes it)"
    return f" (ran {check.elsewhere}: its heartbeat decides in {duration(check.decides_in_s)})"


@flows.command("logs", short_help="Print what one step call wrote to stdout and stderr.")
@click.argument("run_id")
@click.argument("step")
@click.option("--raw", is_flag=True, help="Print the output as stored, terminal control codes included.")
def flows_logs(run_id: str, step: str, raw: bool) -> None:
    """Print what STEP (a call like train#3, or a step name called once) wrote to stdout/stderr.

    For a step that ran on SLURM, the output of its job follows (what the scheduler and plinth's
    worker wrote: a time limit reached, a node lost).

    Control codes (colours, carriage returns) are shown escaped, e.g. \\x1b, unless --raw.
    """
    from plinth.tracking.context import backend

    be = backend()
    steps = be.store.step_runs(run_id)
    chosen = [s for s in steps if s.call == step] or [s for s in steps if s.step == step]
    if not chosen:
        calls = ", ".join(s.call for s in steps) or "none"
        raise NotFound(f"Flow run {run_id} has no step {step!r}; its calls are: {calls}.")
    if len(chosen) > 1:
        raise InvalidInput(
            f"Step {step!r} was called {len(chosen)} times; name one call, e.g. {chosen[0].call}."
        )
    [found] = chosen
    job = _slurm_job(be, found)
    if found.log_digest is None and job is None:
        say(f"{found.call} wrote nothing to stdout or stderr.")
        return
    if found.log_digest is not None:
        data = be.blobs.read_bytes(found.log_digest, name=f"output of step {found.call}")
        text = data.decode(errors="replace")
        console.file.write(text if raw else render.escape(text))
    if job is not None:
        _print_job_log(*job, raw=raw)


def _slurm_job(be: Any, step: StepRun) -> tuple[str, str | None] | None:
    """(job id, its log file) of the SLURM job that ran the step's latest attempt, if it ran on SLURM."""
    from plinth.flows.driver import JOB_LOG_TAG, JOB_TAG

    tags = be.store.get_run(step.id).tags
    job = tags.get(JOB_TAG)
    return (job, tags.get(JOB_LOG_TAG)) if job else None


def _print_job_log(job: str, path: str | None, *, raw: bool) -> None:
    """The tail of a SLURM job's own output (the scheduler's and plinth's worker messages)."""
    if path is None or not os.path.isfile(path):
        where = f"its log file {path} is gone" if path else "its log file is not recorded"
        say(f"SLURM job {job}: {where}.")
        return
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - JOB_LOG_TAIL))
        text = fh.read().decode(errors="replace")
    cut = f" (its last {JOB_LOG_TAIL // 1024} KiB)" if size > JOB_LOG_TAIL else ""
    say(f"── SLURM job {job}, {path}{cut}:")
    console.file.write(text if raw else render.escape(text))
