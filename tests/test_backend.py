"""The backend interface (rollouts/backend.py): inline and Ray behind one set of calls."""

from __future__ import annotations

import pytest

from agentrl.config import load_config
from agentrl.rollouts.backend import InlineBackend, RayBackend, make_backend
from agentrl.trainer import Trainer


def test_the_cluster_mode_picks_the_backend():
    inline = make_backend(load_config(["cluster=inline"]))
    ray = make_backend(load_config(["cluster=local"]))
    assert isinstance(inline, InlineBackend) and not inline.overlaps_collection
    assert isinstance(ray, RayBackend) and ray.overlaps_collection  # nothing started yet


@pytest.mark.parametrize("algorithm, acts", [("ppo", False), ("chai", True)])
def test_inline_backend_shares_the_policy_and_acts_with_the_algorithms_rule(
    tiny_overrides, algorithm, acts
):
    cfg = load_config([*tiny_overrides, f"algorithm={algorithm}"])
    trainer = Trainer(cfg, console=False)
    trainer._build()
    learner, workers = trainer.learner, trainer.workers
    assert workers.worker.policy is learner.policy  # inline workers use the learner's policy
    assert (trainer._act is not None) == acts  # CHAI's critic-ranked choice acts in rollouts
    assert trainer.backend.sync_weights(learner, workers, 7) == 0  # nothing moves
    assert workers.worker.policy_version == 7
