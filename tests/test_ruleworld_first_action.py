"""benchmarks/curricula_ruleworld.py: the greedy first-action check (``optimal_first``) and the
run configs it builds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agentrl.envs.ruleworld import RuleWorldEnv, RuleWorldGood, parse_touch, room_actions

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.curricula_ruleworld import (  # noqa: E402  (ROOT on path)
    build_parser,
    held_out,
    large_task_list,
    optimal_first,
    overrides_for,
)


def test_depth1_world_by_hand() -> None:
    task = {"world_seed": 10_000, "depth": 1, "distractors": 2}
    env = RuleWorldEnv(depth=1)
    env.reset(seed=0, options={"task": dict(task)})
    (maker,) = [(a, b) for a, b, c in env.rules if c == env.goal]
    good, n = optimal_first(task)
    assert good == {maker, maker[::-1]}  # the goal's rule, in both orders
    assert n == len(room_actions(env.objects))


def test_good_player_is_always_optimal_and_random_is_not() -> None:
    env = RuleWorldEnv(depth=[1, 2, 3, 4])
    player = RuleWorldGood()
    chance = []
    for task in held_out(5):
        obs, _ = env.reset(seed=0, options={"task": dict(task)})
        player.reset(task, np.random.default_rng(0))
        good, n = optimal_first(task)
        assert parse_touch(player.act(obs)) in good
        chance.append(len(good) / n)
    assert 0.05 < float(np.mean(chance)) < 0.5  # most room actions are not a plan's first step


def _args(tmp_path: Path, *extra: str):
    """The benchmark's parsed arguments."""
    return build_parser().parse_args(["--run-root", str(tmp_path), *extra])


def test_run_configs_are_valid_and_follow_the_options(tmp_path: Path) -> None:
    from agentrl.config import load_config

    with pytest.raises(SystemExit, match="run --modes bc bc2"):  # RL runs need the warm start
        overrides_for("uniform", 0, _args(tmp_path))
    (tmp_path / "bc_s0" / "checkpoints" / "latest").mkdir(parents=True)
    args = _args(tmp_path, "--algorithm", "filtered_bc", "--lr", "3e-4", "--train-worlds", "large",
                 "--extra", "algorithm.steps=2")  # fmt: skip
    for mode in ("bc", "uniform", "xland"):
        cfg = load_config(overrides_for(mode, 0, args))
        assert cfg.algorithm["name"] == "filtered_bc" and cfg.algorithm["lr"] == 3e-4
        assert cfg.algorithm["steps"] == 2 and "epochs" not in cfg.algorithm
        if mode != "bc":
            assert cfg.curriculum["tasks_from"] == "benchmarks.curricula_ruleworld:large_task_list"
    ppo = load_config(overrides_for("xland", 0, _args(tmp_path, "--ppo-epochs", "3")))
    assert ppo.algorithm["name"] == "ppo" and ppo.algorithm["epochs"] == 3
    assert ppo.curriculum["tasks_from"] == "agentrl.envs.ruleworld:task_list"


def test_large_training_worlds_never_include_held_out_worlds() -> None:
    train = large_task_list()
    assert len(train) == 4000 and len({(t["world_seed"], t["depth"]) for t in train}) == 4000
    held = {(t["world_seed"], t["depth"]) for t in held_out(25)}
    assert not held & {(t["world_seed"], t["depth"]) for t in train}
