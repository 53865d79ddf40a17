"""Where the policy runs and in which precision: ``model.device`` and ``model.autocast``.

``model.device`` is ``auto`` (CUDA when this process sees a CUDA device, else CPU),
``cpu``, ``cuda`` (= ``cuda:0``) or ``cuda:N``. ``model.autocast`` is ``auto`` (bf16 on a
CUDA device that supports it, none on CPU), ``bf16`` or ``none``; the learner wraps every
algorithm update in ``torch.autocast(device.type, dtype=torch.bfloat16)`` when it is on.
Weights stay in ``model.dtype`` (fp32 by default), so the optimiser state and the weights
the workers receive are fp32: autocast only runs the matmuls in bf16.

The resolvers are pure functions of the spec and of what the process sees (passed in, or
read from ``torch.cuda``), so the CUDA branches are unit-tested on a CPU-only machine.

Ray actors (:func:`actor_device`): a Ray actor only owns a GPU it reserved, and Ray maps
the reserved GPU to ``cuda:0`` inside the actor (``CUDA_VISIBLE_DEVICES``). So an actor
with ``num_gpus > 0`` resolves ``auto`` to ``cuda``, one with ``num_gpus == 0`` to ``cpu``
(it never grabs a GPU that the scheduler may have given to another actor).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
AUTOCAST_CHOICES = ("auto", "bf16", "none")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)$|^cuda:(\d+)$")


def _config_error(message: str) -> Exception:
    # Imported here: agentrl.config imports agentrl.policy (ModelConfig) at module level.
    from agentrl.config import ConfigError

    return ConfigError(message)


def check_device_spec(spec: str) -> None:
    """Raise a ``ConfigError`` naming the choices when ``spec`` is not a device spec."""
    if not isinstance(spec, str) or not _DEVICE_RE.match(spec):
        raise _config_error(
            f"invalid config value model.device={spec!r}: expected one of "
            f"{', '.join(DEVICE_CHOICES)}"
        )


def check_autocast_spec(spec: str) -> None:
    """Raise a ``ConfigError`` naming the choices when ``spec`` is not an autocast spec."""
    if spec not in AUTOCAST_CHOICES:
        raise _config_error(
            f"invalid config value model.autocast={spec!r}: expected one of "
            f"{', '.join(AUTOCAST_CHOICES)}"
        )


def resolve_device(
    spec: str, cuda_available: bool | None = None, device_count: int | None = None
) -> torch.device:
    """The torch device ``spec`` names in this process.

    Args:
        spec: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        cuda_available: whether CUDA is usable (default ``torch.cuda.is_available()``).
        device_count: visible CUDA devices (default ``torch.cuda.device_count()`` when CUDA
            is available, else 0).

    Raises:
        ConfigError: an unknown spec, ``cuda`` without a visible CUDA device, or ``cuda:N``
            with ``N`` past the visible devices.
    """
    check_device_spec(spec)
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if device_count is None:
        device_count = torch.cuda.device_count() if cuda_available else 0
    if spec == "cpu" or (spec == "auto" and not cuda_available):
        return torch.device("cpu")
    index = 0 if spec in ("auto", "cuda") else int(spec.split(":")[1])
    if not cuda_available or device_count == 0:
        raise _config_error(
            f"model.device={spec} but this process sees no CUDA device "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False); use "
            "model.device=auto or cpu, install a CUDA build of torch, or give the actor a GPU "
            "(cluster.learner_num_gpus / rollout.num_gpus_per_worker)"
        )
    if index >= device_count:
        raise _config_error(
            f"model.device={spec} but this process sees {device_count} CUDA device(s) "
            f"(cuda:0..cuda:{device_count - 1}); in a Ray actor the reserved GPUs are "
            "renumbered from cuda:0"
        )
    return torch.device("cuda", index)


def resolve_autocast(
    spec: str, device: torch.device, bf16_supported: bool | None = None
) -> torch.dtype | None:
    """The autocast dtype for ``spec`` on ``device``, or ``None`` for no autocast.

    ``auto`` is bf16 on a CUDA device that supports it (Ampere or newer; default
    ``torch.cuda.is_bf16_supported()``) and ``None`` elsewhere, so CPU runs stay exactly fp32.
    ``bf16`` forces bf16 autocast (also on CPU, where it is slower on most CPUs).
    """
    check_autocast_spec(spec)
    if spec == "none":
        return None
    if spec == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        return None
    if bf16_supported is None:
        bf16_supported = bool(torch.cuda.is_bf16_supported())
    return torch.bfloat16 if bf16_supported else None


def actor_device(spec: str, num_gpus: float) -> str:
    """The device spec a Ray actor with ``num_gpus`` reserved GPUs should build its model on.

    ``auto`` becomes ``cuda`` with a GPU reserved and ``cpu`` without; explicit specs are
    kept (``cuda`` without a reserved GPU then fails with a clear error in the actor).
    """
    check_device_spec(spec)
    if spec != "auto":
        return spec
    return "cuda" if num_gpus > 0 else "cpu"


def worker_device(num_gpus: float) -> str:
    """The device of a Ray rollout worker's inference copy: ``cuda`` iff it reserved a GPU.

    ``model.device`` names the learner's device; a worker follows its own reservation
    (``rollout.num_gpus_per_worker``) so a CUDA learner can feed CPU workers and back.
    """
    return "cuda" if num_gpus > 0 else "cpu"


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast(device.type, dtype)`` when ``dtype`` is set, else nothing at all."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


__all__ = [
    "AUTOCAST_CHOICES",
    "DEVICE_CHOICES",
    "actor_device",
    "autocast",
    "check_autocast_spec",
    "check_device_spec",
    "resolve_autocast",
    "resolve_device",
    "worker_device",
]
