"""Which GPUs this machine has, and how busy they are.

Discovery order: the PLINTH_GPUS setting (ids "0,1" or a count "2", also for simulating GPUs on a
machine without any), then NVML (the `nvidia-ml-py` package, used only when importable), then
CUDA_VISIBLE_DEVICES. No GPUs is `[]`, never an error.
"""

from __future__ import annotations

import os
from typing import Any

from plinth.core.errors import ConfigError


def discover_gpus(configured: str | None = None) -> list[int]:
    """GPU ids to schedule into.

    Args:
        configured: the value of PLINTH_GPUS when set: comma-separated ids ("0,1"), a count ("2"
            means ids 0 and 1), or "" / "none" for no GPUs.

    Raises:
        ConfigError: `configured` is neither ids nor a count.
    """
    if configured is not None:
        return _parse_configured(configured)
    found = _nvml_ids()
    if found is not None:
        return found
    return _visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))


def visible_gpus() -> list[int]:
    """The GPU ids this process was given through CUDA_VISIBLE_DEVICES ([] when unset or not ids)."""
    return _visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))


def gpu_utilization(ids: list[int] | tuple[int, ...]) -> list[dict[str, Any]]:
    """Per-GPU load from NVML: [{"gpu", "utilization", "memory_used", "memory_total"}], or [].

    `utilization` is percent busy over the driver's last sample period; memory is in bytes.
    Returns [] where NVML is not available (no `nvidia-ml-py`, no driver, simulated GPUs).
    """
    nvml = _nvml()
    if nvml is None:
        return []
    out: list[dict[str, Any]] = []
    try:
        for gpu in ids:
            handle = nvml.nvmlDeviceGetHandleByIndex(gpu)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            out.append(
                {
                    "gpu": gpu,
                    "utilization": float(rates.gpu),
                    "memory_used": int(memory.used),
                    "memory_total": int(memory.total),
                }
            )
    except Exception:  # NVML raises its own error types for lost or absent devices
        return []
    return out


def _parse_configured(raw: str) -> list[int]:
    text = raw.strip()
    if text.lower() in ("", "none"):
        return []
    try:
        if "," not in text:
            count = int(text)
            if count < 0:
                raise ValueError(text)
            return list(range(count))
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = []
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ConfigError(
            f"PLINTH_GPUS={raw!r} is neither GPU ids nor a count; use e.g. '0,1' (ids) or '2' (a count)."
        )
    return ids


def _nvml() -> Any:
    """The initialised `pynvml` module, or None when it is missing or cannot start."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no device, a container without the library
        return None
    return pynvml


def _nvml_ids() -> list[int] | None:
    """Device indexes NVML sees, narrowed by CUDA_VISIBLE_DEVICES; None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except Exception:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    return [i for i in _visible_devices(visible) if i < count]


def _visible_devices(raw: str | None) -> list[int]:
    """Integer ids from CUDA_VISIBLE_DEVICES; UUID forms and garbage count as none."""
    if not raw:
        return []
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part.isdigit():
            break  # CUDA stops at the first invalid entry, so do we
        ids.append(int(part))
    return ids
