"""The interface every algorithm implements, and how the trainer builds one.

An algorithm is pure torch: it receives :class:`~agentrl.types.Episode` objects (never Ray
handles or env objects), owns its optimisers and auxiliary networks (critics, replay
buffers), and trains the policy it was given in place. Register one with
``@ALGORITHMS.register("name")`` on a class that has a ``Config`` dataclass attribute and
the constructor ``Cls(config, policy, seed=0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from agentrl.types import Episode


@runtime_checkable
class Algorithm(Protocol):
    """What the learner calls.

    Methods:
        update(episodes): one training iteration on freshly collected episodes (on-policy
            algorithms use them directly; off-policy ones add them to a replay buffer
            first). Returns scalar stats for logging (floats only).
        state_dict(): everything needed to resume exactly, except the policy weights
            (saved by the checkpointer): optimiser states, critics, target networks,
            RNG states as tensors, counters. Must be loadable with
            ``torch.load(weights_only=True)``: tensors, numbers, strings, lists, dicts.
        load_state_dict(sd): the inverse.

    Optional methods the trainer uses when present:
        replay_rows() -> list[dict] / load_replay_rows(rows): a replay buffer written as
            JSONL in checkpoints.
        act(observations, sampling) -> list[Generation]: an acting rule other than
            sampling the policy (e.g. CHAI's best-of-k by the critic).
    """

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class AlgorithmBase:
    """Typed defaults of what an algorithm declares to the trainer (built-ins subclass it).

    Attributes:
        Config: the dataclass of its config section (validated before any work starts).
        offline: learns from a fixed dataset only (the trainer collects no rollouts).
        supports_extra_loss: accepts ``extra_loss_fn(policy)`` (a lifelong regulariser,
            e.g. EWC) into every policy step.
    """

    Config: ClassVar[type | None] = None
    offline: ClassVar[bool] = False
    supports_extra_loss: ClassVar[bool] = False

    @classmethod
    def episodes_per_task(cls, config: Any) -> int:
        """How many episodes the trainer plays of each sampled task in an iteration, all
        with the same env seed (GRPO's groups); 1 for everything else."""
        return 1


def episodes_per_task(name: str, section: dict[str, Any]) -> int:
    """:meth:`AlgorithmBase.episodes_per_task` of registered algorithm ``name`` with its
    config ``section`` (1 for an algorithm that does not subclass :class:`AlgorithmBase`)."""
    from agentrl.config import make_dataclass_config
    from agentrl.registry import ALGORITHMS

    cls = ALGORITHMS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, AlgorithmBase)) or cls.Config is None:
        return 1
    return cls.episodes_per_task(make_dataclass_config(cls.Config, section, where=f"algorithm={name}"))


def build_algorithm(name: str, overrides: dict[str, Any], policy: Any, seed: int = 0) -> Algorithm:
    """Look ``name`` up in the registry, validate ``overrides`` against its ``Config``, build it."""
    from agentrl.config import make_dataclass_config
    from agentrl.registry import ALGORITHMS

    cls = ALGORITHMS.get(name)
    config_cls = getattr(cls, "Config", None)
    config = make_dataclass_config(config_cls, overrides, where=f"algorithm={name}") if config_cls else None
    return cls(config, policy, seed=seed)
