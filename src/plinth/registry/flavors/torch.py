"""PyTorch modules: TorchScript where the module scripts, else a state dict plus its class.

TorchScript (`model.pt`) needs no Python code to load. A module that cannot be scripted is
saved as `state_dict.pt` with its importable class path ("module:QualName") and the
constructor keyword arguments given as the save option `init_kwargs`; loading imports the
class, builds it and loads the weights. Loaded modules are in eval mode, on CUDA where present.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from plinth.core.errors import IntegrityError, InvalidInput
from plinth.registry.flavors.base import Flavor

if TYPE_CHECKING:
    from plinth.registry.package import Package

SCRIPT_FILE = "model.pt"
STATE_FILE = "state_dict.pt"
OPTIONS = ("init_kwargs", "input_dtype")
_TARGET = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*:[^\W\d]\w*(\.[^\W\d]\w*)*")


class TorchFlavor(Flavor):
    """A `torch.nn.Module`. Save options: `init_kwargs` (state-dict fallback), `input_dtype`.

    predict turns a DataFrame or ndarray into a tensor of the input dtype (the save option, else
    the module's floating-point parameter dtype, else float32) on the module's device, runs the
    module under `torch.inference_mode()` and returns a NumPy array.
    """

    name = "pytorch"
    libraries = ("torch",)

    def __init__(self) -> None:
        self._input_dtype: str | None = None  # set by load from meta

    @classmethod
    def detect(cls, model: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: Any, path: str, **options: Any) -> dict[str, Any]:
        import torch

        _check_options(options)
        if not isinstance(model, torch.nn.Module):
            raise InvalidInput(
                f"The pytorch flavor saves a torch.nn.Module, got {type(model).__name__}; "
                "wrap it in a module or choose another flavor."
            )
        cls = type(model)
        meta: dict[str, Any] = {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "input_dtype": _dtype_option(options.get("input_dtype"), torch) or _param_dtype(model, torch),
        }
        scripted = _script(model, torch)
        if scripted is not None:
            with _quiet_jit():
                torch.jit.save(scripted, os.path.join(path, SCRIPT_FILE))
            return {**meta, "format": "torchscript", "file": SCRIPT_FILE}
        init_kwargs = _init_kwargs(cls, options.get("init_kwargs"))
        torch.save(model.state_dict(), os.path.join(path, STATE_FILE))
        return {**meta, "format": "state_dict", "file": STATE_FILE, "init_kwargs": init_kwargs}

    def load(self, package: Package) -> Any:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        meta = package.meta
        # by path, not bytes: TorchScript and weights-only state dicts run no Python code when
        # loaded, and torch reads a large file without a second copy in memory
        file = package.path(package.field("file"))
        if package.field("format") == "torchscript":
            with _quiet_jit():
                model = torch.jit.load(file, map_location=device)
        else:
            model = _build(package, torch)
            _load_state(model, package, torch.load(file, map_location=device, weights_only=True))
            model.to(device)
        self._input_dtype = meta.get("input_dtype")
        return model.eval()

    def predict(self, raw: Any, data: Any) -> Any:
        import numpy as np
        import pandas as pd
        import torch

        array = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        dtype = getattr(torch, self._input_dtype or _param_dtype(raw, torch))
        # torch.tensor copies: arrays from pandas frames may be read-only, which as_tensor warns about
        tensor = torch.tensor(array, dtype=dtype, device=_device(raw, torch))
        with torch.inference_mode():
            return _to_numpy(raw(tensor), torch)

    def has_proba(self, raw: Any) -> bool:
        return False


def _to_numpy(output: Any, torch: Any) -> Any:
    """A tensor as a NumPy array (on the CPU); tuples, lists and dicts of tensors element-wise."""
    if isinstance(output, torch.Tensor):
        return output.detach().cpu().numpy()
    if isinstance(output, (tuple, list)):
        return type(output)(_to_numpy(o, torch) for o in output)
    if isinstance(output, dict):
        return {k: _to_numpy(v, torch) for k, v in output.items()}
    return output


def _check_options(options: dict[str, Any]) -> None:
    """InvalidInput for an option this flavor does not know."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidInput(
            f"Unknown pytorch save option(s) {', '.join(unknown)}; the options are {', '.join(OPTIONS)}."
        )


def _dtype_option(value: Any, torch: Any) -> str | None:
    """The `input_dtype` option as a torch dtype name ('float32'), or None when not given."""
    if value is None:
        return None
    name = str(value).removeprefix("torch.")
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise InvalidInput(f"input_dtype {value!r} is not a torch dtype; use e.g. 'float32' or 'int64'.")
    return name


def _param_dtype(model: Any, torch: Any) -> str:
    """The dtype of the module's first floating-point parameter or buffer; 'float32' when none."""
    for tensor in _tensors(model):
        if tensor.is_floating_point():
            return str(tensor.dtype).removeprefix("torch.")
    return "float32"


def _device(model: Any, torch: Any) -> Any:
    """The device of the module's first parameter or buffer; the CPU when it has none."""
    return next((t.device for t in _tensors(model)), torch.device("cpu"))


def _tensors(model: Any) -> Iterator[Any]:
    """The module's parameters, then its buffers."""
    yield from model.parameters()
    yield from model.buffers()


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence TorchScript's own deprecation notices (torch.jit.script/save/load), nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is (deprecated|not supported)", category=DeprecationWarning
        )
        yield


def _script(model: Any, torch: Any) -> Any:
    """`torch.jit.script(model)`, or None when the module cannot be scripted."""
    try:
        with _quiet_jit():
            return torch.jit.script(model)
    except Exception:  # the compiler raises many types (RuntimeError, NotSupportedError, OSError...)
        return None


def _init_kwargs(cls: type, init_kwargs: Any) -> dict[str, Any]:
    """Validate the fallback: an importable class, JSON-safe kwargs its constructor accepts."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    advice = "define the class in an importable module, or make the module scriptable with torch.jit.script"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InvalidInput(
            f"{cls.__name__} cannot be scripted and {target} cannot be imported later; {advice}."
        )
    try:
        found = _import_class(target)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{cls.__name__} cannot be scripted and {target} cannot be imported; {advice}."
        ) from exc
    if found is not cls:
        raise InvalidInput(f"{cls.__name__} cannot be scripted and {target} imports another class; {advice}.")
    kwargs = {} if init_kwargs is None else init_kwargs
    _check_kwargs(cls, kwargs)
    return kwargs


def _check_kwargs(cls: type, kwargs: Any) -> None:
    """InvalidInput unless `kwargs` is a JSON-safe dict the constructor accepts."""
    if not isinstance(kwargs, dict):
        raise InvalidInput(
            f"init_kwargs must be a dict of constructor arguments, got {type(kwargs).__name__}."
        )
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"init_kwargs must be JSON-safe (numbers, strings, lists, dicts): {exc}. "
            "Pass plain values and build objects inside the constructor."
        ) from exc
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise InvalidInput(
            f"{cls.__name__} cannot be rebuilt from init_kwargs={kwargs!r}: {exc}. "
            "Pass the constructor's arguments as init_kwargs."
        ) from exc


def _build(package: Package, torch: Any) -> Any:
    """The module class the manifest names, built from its `init_kwargs`.

    The class must be a `torch.nn.Module` subclass before anything is called: a forged manifest
    could otherwise name any importable callable (`subprocess:Popen`) and its arguments.

    Raises:
        IntegrityError: `meta.class` is not a torch.nn.Module subclass, or `init_kwargs` is not a dict.
        InvalidInput: the class cannot be imported, or does not build from `init_kwargs`.
    """
    target = package.field("class")
    kwargs = package.field("init_kwargs", dict) if "init_kwargs" in package.meta else {}
    if not _TARGET.fullmatch(target):
        raise _not_a_module(package, target, "is not a 'module:QualName' path")
    cls = _import_class(target)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise _not_a_module(package, target, "is not a torch.nn.Module subclass")
    try:
        return cls(**kwargs)
    except Exception as exc:  # the class's own code: any exception means it did not build
        raise InvalidInput(
            f"Model {package.ref} could not be built: {target}(**{kwargs!r:.200}) raised "
            f"{type(exc).__name__}: {str(exc)[:500]}. The code that defines the class may differ "
            "from the code the model was saved with; install that version, or register the model again."
        ) from exc


def _load_state(model: Any, package: Package, state: Any) -> None:
    """Load the saved weights into `model`; InvalidInput when they do not fit the class as installed."""
    try:
        model.load_state_dict(state)
    except Exception as exc:  # RuntimeError for missing or mis-shaped weights; anything from the class
        raise InvalidInput(
            f"The weights of model {package.ref} do not fit {package.field('class')} as installed "
            f"({type(exc).__name__}: {str(exc)[:500]}); install the version of the code the model "
            "was saved with, or register the model again."
        ) from exc


def _not_a_module(package: Package, target: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"The manifest of model {package.ref} names {target[:200]!r} as its module class (meta.class), "
        f"which {what}; nothing was built from it. The store was edited by hand: restore it from a "
        "backup, or register the model again."
    )


def _import_class(target: str) -> Any:
    """The object at 'module:QualName'; InvalidInput when it cannot be imported.

    Importing runs the module's code: loading trusts the modules installed here, whatever names them.
    """
    module, _, qualname = target.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises as it runs
        raise InvalidInput(
            f"Cannot import the module class {target!r} this model was saved from "
            f"({type(exc).__name__}: {str(exc)[:200]}); install or put on sys.path the code that defines it."
        ) from exc
    return found
