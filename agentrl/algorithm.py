"""The interface every algorithm implements, and how the trainer builds one.

An algorithm is pure torch: it receives :class:`~agentrl.types.Episode` objects (never Ray
handles or env objects), owns its optimisers and auxiliary networks (critics, replay
buffers), and trains the policy it was given in place. Register one with
``@ALGORITHMS.register("name")`` on a subclass of :class:`AlgorithmBase` with a ``Config``
dataclass attribute and the constructor ``Cls(config, policy, seed=0)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from agentrl.parallel import MinibatchStep
from agentrl.policy.sampling import SamplingConfig
from agentrl.types import Episode, Generation

if TYPE_CHECKING:
    from agentrl.policy import Policy

ActingState = dict[str, torch.Tensor]
"""What a rollout worker's copy of an acting rule needs besides the policy weights (CHAI: its
critic's ``state_dict``; RLTF: its exploration rate), sent with them at every weight sync."""


class ActingRule(ABC):
    """An algorithm's own way of choosing each turn's utterance instead of sampling the policy
    (CHAI's critic-ranked choice, RLTF's epsilon-greedy candidate choice), run where the
    episodes are collected.

    Inline, the algorithm acts itself (:meth:`AlgorithmBase.act`: the learner's policy, its live
    networks and its checkpointed generators). On a Ray rollout worker,
    :meth:`AlgorithmBase.worker_acting_rule` builds a copy around the worker's policy; at every
    weight sync the worker gives it the learner's :meth:`AlgorithmBase.acting_state`
    (:meth:`load_state`) and before every collection re-seeds it from that collection's seed
    (:meth:`reseed`: the run seed, the iteration and the worker index), so a worker's draws
    are reproducible, also after a worker restart or a resume.
    """

    @abstractmethod
    def __call__(
        self,
        observations: Sequence[str],
        prompts: Sequence[Sequence[int]],
        sampling: SamplingConfig,
    ) -> list[Generation]:
        """One generation per state (``observations`` the state texts, ``prompts`` the
        policy's context ids of the same states)."""

    @abstractmethod
    def load_state(self, state: ActingState) -> None:
        """Take the learner's newest :meth:`AlgorithmBase.acting_state`."""

    @abstractmethod
    def reseed(self, seed: int) -> None:
        """Re-seed every generator the rule draws from (:func:`rule_seed` gives one seed per
        stream)."""


def rule_seed(seed: int, stream: int) -> int:
    """The seed of an acting rule's random ``stream`` (0, 1, ...) when it is re-seeded with
    ``seed``: independent streams per ``(seed, stream)`` (numpy's ``SeedSequence``)."""
    state = np.random.SeedSequence([int(seed) % 2**64, stream]).generate_state(1, np.uint64)
    return int(state[0] >> 1)


class AlgorithmBase(ABC):
    """The base class of every algorithm: what it declares to the trainer, typed, with
    defaults in one place, and the three methods the learner calls.

    Class attributes (declared by the subclass):
        Config: the dataclass of its config section; validated before any work starts, its
            field defaults are the algorithm's defaults (``configs/algorithm/<name>.yaml``
            repeats them; an experiment config holds a paper's values).
        offline: learns from a fixed dataset only (the trainer collects no rollouts).
        supports_extra_loss: adds :attr:`extra_loss_fn` (a lifelong regulariser, e.g. EWC)
            to every policy step.
        has_acting_rule: episodes are collected with an acting rule of its own instead of
            sampling the policy (CHAI's critic-ranked choice, RLTF's candidate choice): inline
            with :meth:`act`, on Ray rollout workers with :meth:`worker_acting_rule` fed with
            :meth:`acting_state` at every weight sync.
        learner_group: the strategies (``ddp``, ``fsdp``) with which it runs on a learner
            group of several processes (``cluster.learner_workers > 1``): every optimiser
            step of its update gets its gradients from :attr:`data_parallel`, and
            :meth:`optimizers` lists its optimisers (:mod:`agentrl.parallel`). Empty: one
            learner process only.

    Set by the learner after construction:
        sampling_temperature: the rollout temperature (an algorithm whose sampling
            log-probs come from a tempered policy re-scores them).
        extra_loss_fn: ``extra_loss_fn(policy) -> Tensor | None``, or ``None``.
        data_parallel: how an optimiser step computes its gradients: in this process
            (:class:`~agentrl.parallel.MinibatchStep`), or this rank's share of a learner
            group (:class:`~agentrl.parallel.GroupStep`).

    Methods:
        update(episodes): one training iteration on freshly collected episodes (on-policy
            algorithms use them directly; off-policy ones add them to a replay buffer
            first). Returns scalar stats for logging (floats only).
        state_dict(): everything needed to resume exactly, except the policy weights
            (saved by the checkpointer): optimiser states, critics, target networks,
            RNG states as tensors, counters. Must be loadable with
            ``torch.load(weights_only=True)``: tensors, numbers, strings, lists, dicts.
        load_state_dict(sd): the inverse.
        replay_rows() / load_replay_rows(rows): a replay buffer as JSON rows, written to
            checkpoints (``None``: the algorithm keeps none).
        acting_state() / worker_acting_rule(config, policy): with :attr:`has_acting_rule`, what
            a Ray rollout worker's copy of the acting rule needs and how the worker builds it
            (:class:`ActingRule`).
        episodes_per_task(config): episodes played of each sampled task (GRPO's groups).
        check_run(config, constraint): refuses, before any work, a combination of its config
            with the run's settings that cannot work.
        check_group(config, strategy): likewise for a learner group.
    """

    Config: ClassVar[type | None] = None
    offline: ClassVar[bool] = False
    supports_extra_loss: ClassVar[bool] = False
    has_acting_rule: ClassVar[bool] = False
    learner_group: ClassVar[tuple[str, ...]] = ()
    sampling_temperature: float = 1.0
    extra_loss_fn: Callable[[Any], torch.Tensor | None] | None = None
    data_parallel: MinibatchStep = MinibatchStep()

    @classmethod
    def episodes_per_task(cls, config: Any) -> int:
        """How many episodes the trainer plays of each sampled task in an iteration, all
        with the same env seed (GRPO's groups); 1 for everything else."""
        return 1

    @classmethod
    def check_run(cls, config: Any, constraint: str | None) -> None:
        """Raise ``ValueError`` (naming the keys and the fix) when ``config`` cannot run with
        the run's decoding ``constraint`` (``rollout.sampling.constraint``); called before any
        work starts. Everything is accepted by default."""
        return None

    @classmethod
    def check_group(cls, config: Any, strategy: str) -> None:
        """Raise ``ValueError`` (saying why) when ``config`` cannot run on a learner group with
        ``strategy`` (``cluster.learner_strategy``); by default it can with the strategies of
        :attr:`learner_group`."""
        if strategy not in cls.learner_group:
            raise ValueError(
                "its update does not split its optimiser steps across processes"
                if not cls.learner_group
                else f"it supports cluster.learner_strategy={' or '.join(cls.learner_group)}"
            )

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimisers of its update, whose parameters a learner group keeps in step
        (none by default)."""
        return []

    @abstractmethod
    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...

    def act(
        self, observations: Sequence[str], prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Generation]:
        """The acting rule of an algorithm with :attr:`has_acting_rule`, inline: one generation
        per state (``observations`` the state texts, ``prompts`` the policy's context ids)."""
        raise NotImplementedError(f"{type(self).__name__} has no acting rule of its own")

    def acting_state(self) -> ActingState:
        """What :meth:`worker_acting_rule`'s copies need besides the policy weights, as CPU
        tensors (sent with the weights at every sync over Ray); nothing by default."""
        return {}

    @classmethod
    def worker_acting_rule(cls, config: Any, policy: Policy) -> ActingRule:
        """A copy of the acting rule for a Ray rollout worker, acting with the worker's
        ``policy`` (the inference copy that receives the learner's weights); ``config`` is the
        algorithm's ``Config``. The worker gives it :meth:`acting_state` before it acts."""
        raise NotImplementedError(
            f"{cls.__name__} sets has_acting_rule but defines no worker_acting_rule, so Ray "
            "rollout workers cannot act with it (docs/write_your_algorithm.md)"
        )

    def replay_rows(self) -> list[dict[str, Any]] | None:
        """The replay buffer as JSON rows, or ``None`` when there is none."""
        return None

    def load_replay_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Restore the replay buffer from :meth:`replay_rows`'s rows (none kept: nothing to do)."""
        return None


Algorithm = AlgorithmBase  # the name the learner and the docs use


def algorithm_class(name: str) -> type[AlgorithmBase]:
    """The registered algorithm ``name``; a clear error when it does not subclass
    :class:`AlgorithmBase`."""
    from agentrl.registry import ALGORITHMS

    cls = ALGORITHMS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, AlgorithmBase)):
        raise TypeError(
            f"algorithm {name!r} ({cls!r}) must be a subclass of agentrl.algorithm.AlgorithmBase "
            "(it declares Config, offline, supports_extra_loss, has_acting_rule)"
        )
    return cls


def episodes_per_task(name: str, section: dict[str, Any]) -> int:
    """:meth:`AlgorithmBase.episodes_per_task` of registered algorithm ``name`` with its
    config ``section``."""
    from agentrl.config import make_dataclass_config

    cls = algorithm_class(name)
    config = make_dataclass_config(cls.Config, section, where=f"algorithm={name}") if cls.Config else None
    return cls.episodes_per_task(config)


def check_run(name: str, section: dict[str, Any], constraint: str | None) -> None:
    """:meth:`AlgorithmBase.check_run` of registered algorithm ``name`` with its config
    ``section``."""
    from agentrl.config import make_dataclass_config

    cls = algorithm_class(name)
    config = make_dataclass_config(cls.Config, section, where=f"algorithm={name}") if cls.Config else None
    cls.check_run(config, constraint)


@dataclass(frozen=True)
class ActingRuleSpec:
    """What a Ray rollout worker builds an algorithm's acting rule from (it imports no learner).

    Attributes:
        name: the registered algorithm.
        section: its ``algorithm`` config section, as the learner got it.
    """

    name: str
    section: dict[str, Any]

    def build(self, policy: Policy) -> ActingRule:
        """:meth:`AlgorithmBase.worker_acting_rule` of the algorithm around ``policy``."""
        from agentrl.config import make_dataclass_config

        cls = algorithm_class(self.name)
        if not cls.has_acting_rule:
            raise ValueError(f"algorithm {self.name!r} samples the policy: it has no acting rule")
        where = f"algorithm={self.name}"
        config = make_dataclass_config(cls.Config, self.section, where) if cls.Config else None
        return cls.worker_acting_rule(config, policy)


def defines_worker_acting_rule(cls: type[AlgorithmBase]) -> bool:
    """Whether ``cls`` (or a base other than :class:`AlgorithmBase`) defines
    :meth:`~AlgorithmBase.worker_acting_rule`, so Ray rollout workers can act with its rule."""
    return any("worker_acting_rule" in vars(k) for k in cls.__mro__ if k is not AlgorithmBase)


def acting_rule_spec(name: str, section: dict[str, Any]) -> ActingRuleSpec | None:
    """The :class:`ActingRuleSpec` of registered algorithm ``name`` with its config ``section``,
    or ``None`` when it samples the policy."""
    return ActingRuleSpec(name, dict(section)) if algorithm_class(name).has_acting_rule else None


def build_algorithm(name: str, overrides: dict[str, Any], policy: Any, seed: int = 0) -> AlgorithmBase:
    """Look ``name`` up in the registry, validate ``overrides`` against its ``Config``, build it."""
    from agentrl.config import make_dataclass_config

    cls = algorithm_class(name)
    config = make_dataclass_config(cls.Config, overrides, where=f"algorithm={name}") if cls.Config else None
    return cls(config, policy, seed=seed)  # type: ignore[call-arg]
