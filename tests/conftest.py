"""Shared fixtures: one Ray cluster per session, tiny models, fast settings."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local 2-CPU Ray cluster shared by every ``ray`` test of the session."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


TINY_MODEL = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.intermediate_size=128",
    "model.num_heads=2",
]


@pytest.fixture
def tiny_overrides(tmp_path):
    """Overrides for a fast inline run in a temporary run dir."""
    return [
        *TINY_MODEL,
        "cluster=inline",
        "algorithm=ppo",
        f"run_dir={tmp_path / 'run'}",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        "warm_start.enabled=false",
        "rollout.episodes_per_iter=4",
        "rollout.envs_per_worker=4",
        "rollout.num_workers=1",
        "eval.episodes=4",
    ]
