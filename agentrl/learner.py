"""The learner: the trainable policy plus an algorithm, behind one small API.

The same class runs in the driver process (``cluster=inline``) or as a Ray actor (see
:mod:`agentrl.rollouts.ray_actors`), where it gets ``num_gpus`` from the config.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentrl.algorithm import build_algorithm
from agentrl.parallel import GroupSpec, GroupStep
from agentrl.policy import ModelConfig, Policy
from agentrl.policy.chat import ToolSpec
from agentrl.policy.device import autocast, resolve_autocast
from agentrl.types import Episode


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Learner:
    """Holds the trainable policy and the algorithm.

    Args:
        model: the policy's model config.
        algorithm: the ``algorithm`` config section (``name`` + the algorithm's keys).
        seed: seeds torch/numpy/python in this process and the algorithm.
        sampling_temperature: the rollout temperature (algorithms that re-score need it).
        sampling_constraint: the rollout's decoding constraint; the policy's own sampling
            and re-scoring (``policy.action_logprobs``) apply it by default, so log-probs
            match sampling.
        imports: user modules to import first (so their registrations exist here too).
        import_path: folder put on ``sys.path`` for those imports (the driver's cwd).
        lifelong: lifelong components (names or ``{name, **options}``), in hook order; they
            live here, next to the policy (:mod:`agentrl.lifelong`, docs/lifelong.md).
        group: this process's rank in a learner group whose ``torch.distributed`` process
            group is initialised already (:mod:`agentrl.parallel`): the algorithm's steps then
            average their gradients over the group (DDP, or FSDP2 with the model sharded
            here, before the algorithm builds its optimiser); ``None``: one process.
    """

    def __init__(
        self,
        model: ModelConfig,
        algorithm: dict[str, Any],
        seed: int = 0,
        sampling_temperature: float = 1.0,
        sampling_constraint: str | None = None,
        imports: list[str] | None = None,
        import_path: str | None = None,
        lifelong: list[Any] | None = None,
        group: GroupSpec | None = None,
    ):
        from agentrl.registry import import_user_modules

        import_user_modules(list(imports or []), import_path)
        seed_everything(seed)
        self.model_config = model
        self.policy = Policy.from_config(model)  # on model.device (auto: CUDA when visible)
        self.group = group
        if group is not None and group.strategy == "fsdp":
            from agentrl.fsdp import shard_model

            shard_model(self.policy.model)  # before the optimiser holds its parameters
        # bf16 autocast around updates on CUDA (model.autocast=auto), none on CPU: fp32 there.
        self.autocast_dtype = resolve_autocast(model.autocast, self.policy.device)
        self.policy.default_constraint = sampling_constraint
        self.algorithm_name = algorithm["name"]
        self.algorithm = build_algorithm(algorithm["name"], algorithm, self.policy, seed=seed)
        self.algorithm.sampling_temperature = sampling_temperature
        if group is not None:
            self.algorithm.data_parallel = self._group_step(group)
        self.version = 0
        from agentrl.lifelong.base import attach_lifelong

        self.lifelong = attach_lifelong(
            list(lifelong or []), self.algorithm, self.algorithm_name, seed
        )

    def _group_step(self, group: GroupSpec) -> GroupStep:
        """The rank's optimiser steps over the parameters of the algorithm's optimisers."""
        params = [p for opt in self.algorithm.optimizers() for g in opt.param_groups for p in g["params"]]
        if not type(self.algorithm).learner_group or not params:
            raise ValueError(
                f"algorithm {self.algorithm_name!r} cannot run on a learner group: its update "
                "does not step through data_parallel (AlgorithmBase.learner_group)"
            )
        return GroupStep(group, params, self.policy.model)

    # --- training -----------------------------------------------------------------------
    def update(self, episodes: list[Episode]) -> dict[str, float]:
        with autocast(self.policy.device, self.autocast_dtype):
            if not self.lifelong:
                stats = self.algorithm.update(episodes)
            else:  # the hook order is documented in agentrl/lifelong/base.py
                batch, lifelong_stats = self.lifelong.before_update(episodes, self)
                stats = {**self.algorithm.update(batch), **lifelong_stats}
                stats.update(self.lifelong.after_update(episodes))
        self.version += 1
        self.policy.version = self.version
        from agentrl.optim import pop_skipped_steps

        out = {k: float(v) for k, v in stats.items()}
        out["fault/skipped_steps"] = float(pop_skipped_steps())  # NaN/inf gradients (agentrl.optim)
        return out

    def lifelong_task_start(self, task: dict[str, Any]) -> None:
        """A task (scenario block) begins: every lifelong component's ``on_task_start``."""
        self.lifelong.task_start(task)

    def lifelong_task_end(self) -> dict[str, float]:
        """The task ends: every ``on_task_end``, then every ``consolidate`` (EWC's Fisher, sleep)."""
        return self.lifelong.task_end(self)

    def warm_start(
        self,
        rows: list[dict[str, str]],
        epochs: float,
        lr: float,
        batch_size: int,
        seed: int,
        progress: bool = False,
    ) -> dict[str, float]:
        from agentrl.warmstart import sft_warm_start

        return sft_warm_start(
            self.policy,
            rows,
            epochs,
            lr,
            batch_size,
            seed,
            bf16=self.autocast_dtype is not None,
            progress=progress,
        )

    def format_prompts(self, observations: list[str]) -> list[str]:
        return [self.policy.format_prompt(o) for o in observations]

    def sft_rows(
        self, episodes: list[Episode], stop: list[str], tools: Sequence[ToolSpec] = ()
    ) -> list[dict[str, str]]:
        """Warm-start rows of scripted episodes in this policy's format, with the env's
        ``tools`` (:func:`agentrl.warmstart.sft_rows`)."""
        from agentrl.warmstart import sft_rows

        return sft_rows(self.policy, episodes, stop, tools)

    def get_version(self) -> int:
        """Number of updates so far (the version the next episodes are compared with)."""
        return self.version

    def get_weights(self) -> tuple[dict[str, torch.Tensor], int]:
        """CPU copies of the policy's weights (the adapter only under LoRA) and the version.
        Under FSDP a collective: rank 0 gets the gathered weights, the other ranks ``{}``."""
        if self.group is not None and self.group.strategy == "fsdp":
            from agentrl.fsdp import full_weights

            return full_weights(self.policy.model), self.version
        return self.policy.get_weights(), self.version

    def broadcast_weights(self) -> None:
        """Copy rank 0's trainable parameters to every rank of the learner group (after the
        warm start, which runs on rank 0 alone). A collective."""
        from agentrl.parallel import broadcast_parameters

        broadcast_parameters(list(self.policy.trainable_parameters()))

    def pid(self) -> int:
        """This learner's process id (diagnostics and fault-injection tests)."""
        import os

        return os.getpid()

    def act(
        self, observations: list[str], prompts: list[list[int]], sampling: Any
    ) -> list[Any] | None:
        """The algorithm's own acting rule (e.g. CHAI) on state texts and prompt ids, or
        ``None`` to sample the policy."""
        if not self.algorithm.has_acting_rule:
            return None
        return self.algorithm.act(observations, prompts, sampling)

    def acting_state(self) -> dict[str, torch.Tensor]:
        """What the rollout workers' copies of the algorithm's acting rule need besides the
        policy weights (:meth:`~agentrl.algorithm.AlgorithmBase.acting_state`)."""
        return self.algorithm.acting_state()

    # --- checkpoints ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write policy/, algorithm/state.pt, replay/rows.jsonl and this process's RNG states.

        In a learner group every rank calls it (a collective): rank 0 writes the one-process
        format (under FSDP from the gathered full state), with every rank's RNG states
        (``rank_rng``); the other ranks write nothing."""
        d = Path(directory)
        state: dict[str, Any] = {
            "algorithm": self.algorithm.state_dict(),
            "version": self.version,
            "rng": _rng_state(),
        }
        weights: dict[str, torch.Tensor] | None = None
        if self.group is not None:
            from agentrl.parallel import gather_to_rank0

            if self.group.strategy == "fsdp":
                from agentrl.fsdp import full_tensors, full_weights

                state["algorithm"] = full_tensors(state["algorithm"])
                weights = full_weights(self.policy.model)
            state["rank_rng"] = gather_to_rank0(state["rng"])
            if self.group.rank != 0:
                return
        self.policy.save(d / "policy", state_dict=weights)
        (d / "algorithm").mkdir(parents=True, exist_ok=True)
        torch.save(state, d / "algorithm" / "state.pt")
        rows = self.algorithm.replay_rows()
        if rows is not None:
            (d / "replay").mkdir(parents=True, exist_ok=True)
            with open(d / "replay" / "rows.jsonl", "w") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
        if self.lifelong:
            self.lifelong.save(d / "lifelong")

    def save_files(self) -> dict[str, bytes]:
        """:meth:`save` into a temporary folder, returned as ``{relative path: bytes}``: how a
        learner on another node sends its checkpoint to the driver, which writes it."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="agentrl-save-") as tmp:
            self.save(tmp)
            root = Path(tmp)
            return {
                str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()
            }

    def load_files(self, files: dict[str, bytes], weights_only: bool = False) -> None:
        """:meth:`load` from ``{relative path: bytes}`` (read by the driver, on its disk)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="agentrl-load-") as tmp:
            root = Path(tmp)
            for rel, data in files.items():
                target = (root / rel).resolve()
                if root.resolve() not in target.parents:
                    raise ValueError(f"checkpoint file path escapes the checkpoint: {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            self.load(tmp, weights_only=weights_only)

    def load(self, directory: str | Path, weights_only: bool = False) -> None:
        """Restore from a verified checkpoint; ``weights_only`` loads just the policy (init_from)."""
        d = Path(directory)
        saved = Policy.load(d / "policy", model_config=self.model_config)
        if self.group is not None and self.group.strategy == "fsdp":
            from agentrl.fsdp import load_full_weights

            load_full_weights(self.policy.model, saved.get_weights())  # each rank keeps its shard
            self.policy.version = self.version
        else:
            self.policy.set_weights(saved.get_weights(), version=self.version)
        del saved
        if self.lifelong:  # init_from carries replay, anchors, Fisher and the task history too
            self.lifelong.load(d / "lifelong")
        if weights_only:
            return
        # Tensors land on the CPU first; load_state_dict copies them to wherever this
        # learner's modules are (a GPU checkpoint resumes on another GPU index, or the CPU).
        state = torch.load(d / "algorithm" / "state.pt", weights_only=True, map_location="cpu")
        self.algorithm.load_state_dict(state["algorithm"])
        rng = state["rng"]
        if self.group is not None:  # this rank's streams; a rank the writer lacked: rank 0's
            if self.group.strategy == "fsdp":
                from agentrl.fsdp import shard_optimizer_state

                for optimizer in self.algorithm.optimizers():
                    shard_optimizer_state(optimizer)
            ranks = state.get("rank_rng") or [rng]
            rng = ranks[self.group.rank] if self.group.rank < len(ranks) else rng
        self.version = int(state["version"])
        self.policy.version = self.version
        _set_rng_state(rng)
        rows_path = d / "replay" / "rows.jsonl"
        if rows_path.exists():
            with open(rows_path) as f:
                self.algorithm.load_replay_rows([json.loads(line) for line in f if line.strip()])


def _rng_state() -> dict[str, Any]:
    np_state: Any = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": json.dumps(random.getstate()),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
