"""`@step`: a Python function that a flow runs as a tracked, retried, resource-bound task."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from plinth.compute.base import Resources
from plinth.core.errors import InvalidInput
from plinth.core.units import parse_duration, parse_memory
from plinth.core.validation import check_key

if TYPE_CHECKING:
    from plinth.flows.driver import FlowDriver

P = ParamSpec("P")
R = TypeVar("R")
# The driver of the flow whose body is running in this thread, if any.
current_driver: contextvars.ContextVar[FlowDriver | None] = contextvars.ContextVar(
    "plinth_driver", default=None
)


@dataclass(frozen=True)
class StepOptions:
    """How a step runs: its resources, retries, timeout and caching."""

    resources: Resources
    retries: int = 0
    retry_delay_s: float = 1.0
    backoff: float = 2.0
    timeout_s: float | None = None
    cache: bool = False
    image: str | None = None  # the container image its environment comes from (`plinth build --flow`)
    scheduler: Mapping[str, Any] = field(default_factory=dict)  # per executor, e.g. {"slurm": {...}}
    workers: int = 1  # processes that run the step together, each holding `resources`
    distributed: str | None = None  # "torch": torch.distributed is initialised in each of them
    checkpoint: bool = False  # its attempts resume from the last checkpoint (plinth.step_checkpoint)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 is the first retry)."""
        return self.retry_delay_s * self.backoff ** max(0, attempt - 2)


class Step(Generic[P, R]):
    """A step: call it inside a flow to schedule it; outside a flow it is a plain function call.

    It takes the arguments of its function. Inside a flow a call returns at once with a
    `StepFuture` that stands for the value: pass it to other steps, or return it from the flow,
    and they receive the value. So a call is typed as returning what the function returns.
    """

    def __init__(self, fn: Callable[P, R], name: str, options: StepOptions) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.options = options

    def __repr__(self) -> str:
        return f"<step {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        driver = current_driver.get()
        if driver is None:
            return self.fn(*args, **kwargs)
        return cast(R, driver.submit(self, args, kwargs))  # the future stands for the value

    def map(self, *iterables: Iterable[Any], **kwargs: Any) -> list[R]:
        """Fan out: one call per element; keyword lists are zipped with the positional ones.

        `train.map([data] * 4, lr=[0.01, 0.1, 0.2, 0.3])` makes four calls; a keyword given a
        scalar is passed to every call.
        """
        driver = current_driver.get()
        columns = [list(it) for it in iterables]
        listed = {k: list(v) for k, v in kwargs.items() if isinstance(v, (list, tuple))}
        lengths = {len(c) for c in columns} | {len(v) for v in listed.values()}
        if len(lengths) > 1:
            raise InvalidInput(f"{self.name}.map got sequences of different lengths {sorted(lengths)}.")
        count = lengths.pop() if lengths else 0
        calls: list[R] = []
        for i in range(count):
            call_kwargs = {k: (listed[k][i] if k in listed else v) for k, v in kwargs.items()}
            call_args = tuple(c[i] for c in columns)
            if driver is None:
                calls.append(self.fn(*call_args, **call_kwargs))
            else:
                calls.append(cast(R, driver.submit(self, call_args, call_kwargs)))
        return calls


@overload
def step(
    fn: Callable[P, R],
    *,
    name: str | None = None,
    cpu: float = 1,
    memory: str | int | None = None,
    gpu: int = 0,
    retries: int = 0,
    retry_delay: str | float = "1s",
    backoff: float = 2.0,
    timeout: str | float | None = None,
    cache: bool = False,
    image: str | None = None,
    slurm: Mapping[str, Any] | None = None,
    workers: int = 1,
    distributed: str | None = None,
    checkpoint: bool = False,
    ray: Mapping[str, Any] | None = None,
) -> Step[P, R]: ...
@overload
def step(
    fn: None = None,
    *,
    name: str | None = None,
    cpu: float = 1,
    memory: str | int | None = None,
    gpu: int = 0,
    retries: int = 0,
    retry_delay: str | float = "1s",
    backoff: float = 2.0,
    timeout: str | float | None = None,
    cache: bool = False,
    image: str | None = None,
    slurm: Mapping[str, Any] | None = None,
    workers: int = 1,
    distributed: str | None = None,
    checkpoint: bool = False,
    ray: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(
    fn: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    cpu: float = 1,
    memory: str | int | None = None,
    gpu: int = 0,
    retries: int = 0,
    retry_delay: str | float = "1s",
    backoff: float = 2.0,
    timeout: str | float | None = None,
    cache: bool = False,
    image: str | None = None,
    slurm: Mapping[str, Any] | None = None,
    workers: int = 1,
    distributed: str | None = None,
    checkpoint: bool = False,
    ray: Mapping[str, Any] | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Declare a flow step: `@step` or `@step(cpu=..., ...)` over a function.

    Args:
        cpu: CPU slots it occupies; memory: a hard limit ("2GB"), also a slot; gpu: whole GPUs.
        retries: extra attempts after a failure; retry_delay and backoff space them out.
        timeout: the attempt's process is stopped after this long ("10m").
        cache: reuse the result of an earlier call with the same code, inputs and arguments.
        image: the container image that holds the step's environment (from `plinth build
            --flow`); recorded on each of its runs as the tag `plinth.image`.
        slurm: what its jobs ask SLURM for, over the PLINTH_SLURM_* settings, when the flow
            runs with executor="slurm": partition, account, qos, constraint, sbatch_args
            (a list of more sbatch flags). Other executors ignore it.
        ray: how the Ray executor places a group's ranks: {"strategy": "PACK" (default),
            "SPREAD", "STRICT_PACK" or "STRICT_SPREAD"}. Other executors ignore it.
        workers: run the step in this many processes at once (a distributed step), each holding
            cpu, memory and gpu; the executor places them (local processes, a Ray placement
            group, one SLURM job with --ntasks) and sets RANK, WORLD_SIZE, LOCAL_RANK,
            MASTER_ADDR and MASTER_PORT in each. Rank 0's return value is the step's result and
            only rank 0 logs to the step's run; every rank's system metrics are recorded under
            `system/rank{N}/...` (rank 0's under `system/...`). If one rank fails, the whole
            group is stopped and, with retries left, run again.
        distributed: "torch" initialises torch.distributed in every rank before the function
            runs (NCCL when the step has GPUs, Gloo otherwise) and tears it down after.
        checkpoint: the step keeps checkpoints (`run.log_checkpoint`); an attempt that follows
            a failed, killed or preempted one, or the same call in a resumed flow, finds the
            last of them with `plinth.step_checkpoint()`. Steps that call log_checkpoint
            without it get the same behaviour; the flag records the intent (tag
            `plinth.checkpointed`) and makes the step retried at least once.

    Example:
        @step(cpu=1, retries=2, timeout="10m", cache=True)
        def load(seed: int): ...

        @step(gpu=1, slurm={"partition": "gpu", "sbatch_args": ["--exclusive"]})
        def train(data): ...

        @step(workers=4, cpu=2, gpu=1, memory="16GB", distributed="torch", checkpoint=True, retries=3)
        def fit(config): ...
    """

    def wrap(func: Callable[P, R]) -> Step[P, R]:
        if not callable(func):
            raise InvalidInput(f"@step decorates a function, not {type(func).__name__}.")
        options = _options(cpu, memory, gpu, retries, retry_delay, backoff, timeout, cache, image)
        options = replace(options, **_group_options(workers, distributed, checkpoint, options.retries))
        scheduler: dict[str, Any] = {}
        if slurm is not None:
            scheduler["slurm"] = _slurm_options(slurm)
        if ray is not None:
            scheduler["ray"] = _ray_options(ray)
        if scheduler:
            options = replace(options, scheduler=scheduler)
        return Step(func, check_key(name or func.__name__, "step"), options)

    return wrap(fn) if fn is not None else wrap


def _options(
    cpu: float,
    memory: Any,
    gpu: int,
    retries: int,
    retry_delay: Any,
    backoff: float,
    timeout: Any,
    cache: bool,
    image: str | None = None,
) -> StepOptions:
    if not isinstance(cpu, (int, float)) or isinstance(cpu, bool) or cpu <= 0:
        raise InvalidInput(f"cpu must be a positive number of CPU slots, got {cpu!r}.")
    if not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0:
        raise InvalidInput(f"gpu must be a whole number of GPUs (0 or more), got {gpu!r}.")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise InvalidInput(f"retries must be 0 or more, got {retries!r}.")
    if not isinstance(backoff, (int, float)) or backoff < 1:
        raise InvalidInput(f"backoff must be a number >= 1, got {backoff!r}.")
    if image is not None and (not isinstance(image, str) or not image.strip() or len(image) > 500):
        raise InvalidInput(
            f"image must name a container image (REPO[:TAG] or REPO@sha256:...), got {image!r}."
        )
    return StepOptions(
        resources=Resources(cpu=float(cpu), memory=parse_memory(memory), gpu=gpu),
        retries=retries,
        retry_delay_s=parse_duration(retry_delay) or 0.0,
        backoff=float(backoff),
        timeout_s=parse_duration(timeout),
        cache=bool(cache),
        image=image,
    )


DISTRIBUTED = ("torch",)


def _group_options(workers: Any, distributed: Any, checkpoint: Any, retries: int) -> dict[str, Any]:
    """`workers=`, `distributed=` and `checkpoint=` of a step, checked."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidInput(f"workers must be a whole number of processes (1 or more), got {workers!r}.")
    if distributed is not None and distributed not in DISTRIBUTED:
        raise InvalidInput(
            f"distributed={distributed!r} is not a backend plinth sets up; use one of "
            f"{', '.join(map(repr, DISTRIBUTED))}, or None to set up communication yourself."
        )
    if not isinstance(checkpoint, bool):
        raise InvalidInput(f"checkpoint takes True or False, got {checkpoint!r}.")
    retried = max(retries, 1) if checkpoint else retries
    return {"workers": workers, "distributed": distributed, "checkpoint": checkpoint, "retries": retried}


def _ray_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """`ray=` of a step: how the Ray executor places a group's ranks."""
    if not isinstance(given, Mapping):
        raise InvalidInput(f"ray= takes a dict such as {{'strategy': 'SPREAD'}}, got {type(given).__name__}.")
    from plinth.compute.ray.placement import STRATEGIES

    unknown = sorted(set(given) - {"strategy"})
    if unknown:
        raise InvalidInput(f"ray= takes the key 'strategy', not {', '.join(map(repr, unknown))}.")
    if given.get("strategy", "PACK") not in STRATEGIES:
        raise InvalidInput(f"ray={{'strategy': {given['strategy']!r}}}: use one of {', '.join(STRATEGIES)}.")
    return dict(given)


def _slurm_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """`slurm=` of a step, checked now as the SLURM executor will read it (keys, value types)."""
    if not isinstance(given, Mapping):
        raise InvalidInput(f"slurm= takes a dict such as {{'partition': 'gpu'}}, got {type(given).__name__}.")
    from plinth.compute.slurm import SlurmOptions

    SlurmOptions().merged(given)  # raises InvalidInput naming the keys it takes
    for key, value in given.items():
        flags = key == "sbatch_args" and isinstance(value, (list, tuple))
        if not (isinstance(value, str) or (flags and all(isinstance(v, str) for v in value))):
            wanted = "a list of sbatch flags" if key == "sbatch_args" else "text"
            raise InvalidInput(f"slurm={{{key!r}: {value!r}}}: {key} takes {wanted}.")
    return dict(given)
