"""The lifelong component API: hook order, EWC on hand-computed values, reservoir
uniformity, task-change detection, the extra loss reaching the algorithms, clear errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agentrl.config import ConfigError, load_config
from agentrl.lifelong import (
    LifelongComponent,
    LifelongStack,
    Reservoir,
    ewc_penalty,
    fisher_diagonal,
)
from agentrl.lifelong.base import validate_lifelong
from agentrl.lifelong.ewc import EWC, EWCConfig, OnlineEWC
from agentrl.lifelong.replay import ExperienceReplay, ReplayConfig
from agentrl.lifelong.task_change import TaskChangeConfig, TaskChangeDetector, return_shift
from agentrl.registry import LIFELONG
from agentrl.types import Episode, Turn

CALLS: list[tuple[str, str]] = []


class _Recorder(LifelongComponent):
    """Records every hook call; ``A`` reports one task change and adds one episode per batch."""

    tag = "?"

    def __init__(self, config: Any = None, seed: int = 0):
        self.detections = 0

    def on_task_start(self, task: dict[str, Any]) -> None:
        CALLS.append((self.tag, f"task_start:{task['name']}"))

    def on_task_end(self, task: dict[str, Any]) -> None:
        CALLS.append((self.tag, f"task_end:{task['name']}"))

    def detect_task_change(self, episodes: list[Episode]) -> bool:
        CALLS.append((self.tag, "detect"))
        self.detections += 1
        return self.tag == "A" and self.detections == 1

    def on_episode(self, episode: Episode) -> None:
        CALLS.append((self.tag, f"episode:{episode.seed}"))

    def augment_batch(self, episodes: list[Episode]) -> list[Episode]:
        CALLS.append((self.tag, f"augment:{len(episodes)}"))
        return [*episodes, episodes[0]] if self.tag == "A" else list(episodes)

    def extra_loss(self, policy: Any) -> torch.Tensor:
        CALLS.append((self.tag, "extra_loss"))
        return torch.zeros((), requires_grad=True)

    def consolidate(self, learner: Any) -> dict[str, float]:
        CALLS.append((self.tag, "consolidate"))
        return {"ok": 1.0}

    def update_stats(self) -> dict[str, float]:
        CALLS.append((self.tag, "update_stats"))
        return {"updates": 1.0}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class RecorderA(_Recorder):
    tag = "A"


class RecorderB(_Recorder):
    tag = "B"


LIFELONG.register("test_recorder_a", RecorderA)
LIFELONG.register("test_recorder_b", RecorderB)


def _episode(
    seed: int, reward: float = 1.0, obs: str = "Guess the number between 1 and 4.\n"
) -> Episode:
    turn = Turn(
        observation=obs,
        action="2",
        prompt_ids=[5, 6, 7],
        action_ids=[8, 9],
        action_logprobs=[-1.0, -1.0],
        reward=reward,
        terminated=True,
        truncated=False,
    )
    return Episode(
        env_id="agentrl/GuessTheNumber-v0",
        task={},
        seed=seed,
        turns=[turn],
        success=reward > 0,
        env_reward=reward,
    )


def test_hook_order_in_a_learner_update():
    from agentrl.learner import Learner

    cfg = load_config(
        [
            "model.hidden_size=32",
            "model.num_layers=1",
            "model.intermediate_size=64",
            "model.num_heads=2",
        ]
    )
    learner = Learner(
        cfg.model,
        {"name": "filtered_bc", "steps": 2, "top_fraction": 1.0},
        seed=0,
        lifelong=["test_recorder_a", "test_recorder_b"],
    )
    learner.lifelong_task_start({"name": "first"})
    CALLS.clear()
    stats = learner.update([_episode(1), _episode(2)])
    assert CALLS == [
        ("A", "detect"),
        ("B", "detect"),
        # A reported a change: the stack ends the task (all on_task_end, then all consolidate)
        # and starts a new one, before the batch is augmented and trained on.
        ("A", "task_end:first"),
        ("B", "task_end:first"),
        ("A", "consolidate"),
        ("B", "consolidate"),
        ("A", "task_start:detected1"),
        ("B", "task_start:detected1"),
        ("A", "augment:2"),
        ("B", "augment:3"),  # chained: B sees A's output
        ("A", "extra_loss"),
        ("B", "extra_loss"),
        ("A", "extra_loss"),
        ("B", "extra_loss"),  # 2 BC steps
        ("A", "episode:1"),
        ("B", "episode:1"),
        ("A", "episode:2"),
        ("B", "episode:2"),  # fresh only
        ("A", "update_stats"),
        ("B", "update_stats"),
    ]
    assert stats["lifelong/task_change"] == 1.0 and stats["lifelong/batch_episodes"] == 3.0
    assert stats["lifelong/test_recorder_a/updates"] == stats["lifelong/test_recorder_b/updates"] == 1.0
    assert stats["lifelong/test_recorder_a/ok"] == 1.0
    assert learner.lifelong.tasks == ["first", "detected1"]
    CALLS.clear()
    learner.lifelong_task_end()
    assert CALLS == [
        ("A", "task_end:detected1"),
        ("B", "task_end:detected1"),
        ("A", "consolidate"),
        ("B", "consolidate"),
    ]


def test_ewc_penalty_hand_computed():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([0.5], requires_grad=True)
    anchor = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0])}
    fisher = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([4.0])}
    value = ewc_penalty({"w": w, "b": b}, anchor, fisher, lam=2.0)
    # lam/2 * (1*1^2 + 2*2^2 + 4*(-0.5)^2) = 1 * (1 + 8 + 1)
    assert value.item() == pytest.approx(10.0)
    value.backward()
    assert w.grad.tolist() == pytest.approx([2.0, 8.0])  # lam * F * (theta - anchor)
    assert b.grad.tolist() == pytest.approx([-4.0])


class _LinearPolicy:
    """A 'policy' whose utterance log-prob is ``w . x(prompt)``: its Fisher is known in closed form."""

    def __init__(self) -> None:
        self.model = torch.nn.Module()
        self.model.w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))

    def action_logprobs(
        self, prompts: list[list[int]], actions: list[list[int]]
    ) -> tuple[torch.Tensor, ...]:
        x = torch.tensor([[float(p[0]), float(p[1])] for p in prompts])
        sums = x @ self.model.w
        return sums, sums[:, None], torch.ones(len(prompts), 1, dtype=torch.bool)


def test_fisher_and_online_ewc_accumulation():
    policy = _LinearPolicy()
    turns = [([1, 2], [0]), ([3, 0], [0])]
    fisher = fisher_diagonal(policy, turns)
    # gradients are x: F = mean(x^2) = [(1 + 9) / 2, (4 + 0) / 2]
    assert fisher["w"].tolist() == pytest.approx([5.0, 2.0])

    class L:
        pass

    learner = L()
    learner.policy = policy  # type: ignore[attr-defined]
    online = OnlineEWC(EWCConfig(lam=1.0, gamma=0.5))
    for p, a in turns:
        ep = _episode(0)
        ep.turns[0].prompt_ids, ep.turns[0].action_ids = p, a
        online.on_episode(ep)
    online.consolidate(learner)
    online.consolidate(learner)  # F <- 0.5 * F + F_new = 1.5 F; one anchor
    assert len(online.anchors) == 1 and online.fishers[0]["w"].tolist() == pytest.approx([7.5, 3.0])
    ewc = EWC(EWCConfig(lam=1.0))
    for p, a in turns:
        ep = _episode(0)
        ep.turns[0].prompt_ids, ep.turns[0].action_ids = p, a
        ewc.on_episode(ep)
    ewc.consolidate(learner)
    ewc.consolidate(learner)
    assert len(ewc.anchors) == 2  # one per task
    with torch.no_grad():
        policy.model.w += torch.tensor([1.0, 1.0])
    # two identical anchors: 2 * 1/2 * (5 * 1 + 2 * 1)
    assert ewc.penalty_value(policy) == pytest.approx(7.0)
    assert online.penalty_value(policy) == pytest.approx(0.5 * (7.5 + 3.0))


def test_reservoir_keeps_a_uniform_sample():
    # 3000 independent reservoirs (capacity 10) over a stream of 100 items: every item's
    # inclusion count is Binomial(3000, 0.1). Pearson's chi-square over the 100 counts has 99
    # degrees of freedom; its 99.9% quantile is 148.2. A "keep the first 10" buffer scores ~27000.
    n, cap, trials = 100, 10, 3000
    counts = [0] * n
    for t in range(trials):
        r: Reservoir[int] = Reservoir(cap, seed=t)
        for i in range(n):
            r.add(i)
        assert len(r) == cap and r.seen == n
        for i in r.items:
            counts[i] += 1
    expected = trials * cap / n
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 148.2, chi2
    # old and new halves of the stream are equally represented
    assert abs(sum(counts[:50]) - sum(counts[50:])) < 0.05 * trials * cap


def test_replay_mixes_buffer_into_batches_and_round_trips():
    replay = ExperienceReplay(ReplayConfig(capacity=5, ratio=0.5), seed=0)
    replay.on_task_start({"name": "a"})
    for s in range(8):
        replay.on_episode(_episode(s))
    fresh = [_episode(100 + i) for i in range(4)]
    batch = replay.augment_batch(fresh)
    assert batch[:4] == fresh and len(batch) == 6
    assert all(e.seed < 8 for e in batch[4:]) and len({e.seed for e in batch[4:]}) == 2
    assert replay.task_counts() == {"a": 5}
    clone = ExperienceReplay(ReplayConfig(capacity=5, ratio=0.5), seed=99)
    clone.load_state_dict(replay.state_dict())
    assert [e.seed for e in clone.augment_batch(fresh)] == [
        e.seed for e in replay.augment_batch(fresh)
    ]


def test_task_change_detector_on_observations_and_rewards():
    det = TaskChangeDetector(TaskChangeConfig(window=8, z_threshold=4.0))
    low = [_episode(i, reward=float(i % 2)) for i in range(8)]
    assert not det.detect_task_change(low)  # builds the reference
    assert not det.detect_task_change([_episode(i, reward=float(i % 2)) for i in range(8)])
    other_obs = [
        _episode(i, reward=float(i % 2), obs="Guess the number between 5 and 8.\n")
        for i in range(8)
    ]
    assert det.detect_task_change(other_obs)
    det.on_task_start({"name": "next"})
    assert not det.detect_task_change(low)
    assert det.detect_task_change([_episode(i, reward=5.0) for i in range(8)])  # reward shift
    assert return_shift([0.0, 1.0] * 4, [0.0, 1.0] * 4) == pytest.approx(0.0)


def test_extra_loss_changes_the_ppo_bc_and_archer_actor_updates():
    from agentrl.learner import Learner

    cfg = load_config(
        [
            "model.hidden_size=32",
            "model.num_layers=1",
            "model.intermediate_size=64",
            "model.num_heads=2",
        ]
    )
    archer = {
        "name": "archer",
        "warmup_iters": 0,
        "critic_epochs": 1,
        "actor_epochs": 1,
        "batch_size": 2,
        "grad_accum": 1,
        "critic_model": {
            "name": "tiny_encoder",
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 32,
        },
    }
    for algo in (
        {"name": "filtered_bc", "steps": 1, "top_fraction": 1.0},
        {"name": "ppo", "minibatch_size": 4},
        archer,  # the actor step
    ):
        results = []
        for entries in ([], [{"name": "ewc", "lam": 1e6}]):
            learner = Learner(cfg.model, dict(algo), seed=0, lifelong=entries)
            before = {n: p.detach().clone() for n, p in learner.policy.model.named_parameters()}
            if entries:  # an anchor far from the weights: the penalty dominates the update
                ewc = learner.lifelong.components[0][1]
                ewc.anchors = [{n: p + 1.0 for n, p in before.items()}]
                ewc.fishers = [{n: torch.ones_like(p) for n, p in before.items()}]
            learner.update([_episode(1, 1.0), _episode(2, 0.0)])
            moved = [
                float((p.detach() - before[n]).mean())
                for n, p in learner.policy.model.named_parameters()
            ]
            results.append(sum(m > 0 for m in moved) / len(moved))
        # the penalty pulls every weight towards its anchor (= weight + 1): all of them move up
        assert results[1] == 1.0 and results[0] < 0.9, (algo, results)


def test_bad_lifelong_config_fails_early_with_clear_messages():
    with pytest.raises(ConfigError, match="unknown lifelong component 'nope'.*replay"):
        validate_lifelong(["nope"], "ppo")
    with pytest.raises(ConfigError, match="unknown key.*capacityy.*valid keys.*capacity"):
        validate_lifelong([{"name": "replay", "capacityy": 3}], "ppo")
    with pytest.raises(
        ConfigError, match="online_ewc add a loss term.*chai.*algorithms that do:.*ppo"
    ):
        validate_lifelong(["online_ewc"], "chai")
    with pytest.raises(ValueError, match="listed twice"):
        LifelongStack.build(["replay", "replay"])
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        ReplayConfig(capacity=0)


class _OnlyCounts(LifelongComponent):
    """Overrides one hook; the others are the base class's no-ops."""

    def __init__(self, config: Any = None, seed: int = 0):
        self.seen = 0

    def on_episode(self, episode: Episode) -> None:
        self.seen += 1


class _NotAComponent:
    def on_episode(self, episode: Episode) -> None: ...


LIFELONG.register("test_only_counts", _OnlyCounts)
LIFELONG.register("test_not_a_component", _NotAComponent)


def test_a_component_overrides_only_the_hooks_it_needs_and_others_are_refused():
    stack = LifelongStack.build(["test_only_counts"])
    eps = [_episode(0, 1.0), _episode(1, 0.0)]
    batch, stats = stack.before_update(eps, learner=None)
    assert batch == eps and batch is not eps and "lifelong/task_change" not in stats
    assert stack.after_update(eps) == {} and stack.extra_loss(None) is None
    assert stack.components[0][1].seen == 2 and not stack.has_extra_loss
    assert stack.task_end(learner=None) == {} and stack.state_dict()["components"] == {"test_only_counts": {}}
    assert OnlineEWC.adds_loss() and not ExperienceReplay.adds_loss()
    validate_lifelong(["test_only_counts"], "chai")  # no loss term: any algorithm
    with pytest.raises(ConfigError, match="not a subclass of agentrl.lifelong.LifelongComponent"):
        validate_lifelong(["test_not_a_component"], "ppo")


def test_wake_sleep_consolidation_keeps_old_and_takes_new():
    import copy

    from agentrl.learner import Learner
    from agentrl.lifelong.consolidation import (
        ConsolidationConfig,
        WakeSleepConsolidation,
        action_log_distributions,
        distillation_kl,
    )

    cfg = load_config(
        [
            "model.hidden_size=32",
            "model.num_layers=1",
            "model.intermediate_size=64",
            "model.num_heads=2",
        ]
    )
    learner = Learner(cfg.model, {"name": "filtered_bc"}, seed=0)
    comp = WakeSleepConsolidation(ConsolidationConfig(steps=40, batch_size=8, lr=1e-2), seed=0)
    old_turn, new_turn = ([5, 6, 7], [8, 9]), ([11, 12, 13], [14, 15])

    def feed(task: str, turn: tuple[list[int], list[int]]) -> None:
        comp.on_task_start({"name": task})
        ep = _episode(0)
        ep.turns[0].prompt_ids, ep.turns[0].action_ids = turn
        comp.on_episode(ep)

    feed("a", old_turn)
    assert comp.consolidate(learner) == {"sleep_steps": 0.0}  # first sleep: store the stable copy
    stable_a = copy.deepcopy(learner.policy)
    with torch.no_grad():  # the wake phase of task b changes the plastic policy
        for p in learner.policy.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    plastic_b = copy.deepcopy(learner.policy)
    feed("b", new_turn)
    stats = comp.consolidate(learner)
    assert stats["sleep_steps"] == 40.0

    def kl(teacher, student, turn) -> float:
        with torch.no_grad():
            t, mask = action_log_distributions(teacher, [turn[0]], [turn[1]])
            s, _ = action_log_distributions(student, [turn[0]], [turn[1]])
        return float(distillation_kl(t, s, mask))

    consolidated = learner.policy  # the plastic policy was reset to the new stable weights
    assert all(torch.equal(v, comp.stable[k]) for k, v in consolidated.get_weights().items())
    assert kl(stable_a, consolidated, old_turn) < 0.5 * kl(
        stable_a, plastic_b, old_turn
    )  # old skill kept
    assert kl(plastic_b, consolidated, new_turn) < 0.5 * kl(
        plastic_b, stable_a, new_turn
    )  # new skill taken
