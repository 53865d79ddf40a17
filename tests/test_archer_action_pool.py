"""``algorithm.critic_action_samples``: within one critic phase each state gets at most k
draws of the V target's a' (the policy is frozen there), later steps reuse them, the draws
are the policy's own samples, and no pool outlives its phase."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conversation_fixtures import conversation_episodes
from test_archer_cache import archer_config, tiny_policy

from agentrl.algorithms.archer import Archer, ArcherConfig
from agentrl.algorithms.archer.learner import CriticLearner


def _learner(k: int, batch_size: int = 8) -> tuple[CriticLearner, int]:
    """A critic learner over the toy conversations, and their number of distinct states."""
    torch.manual_seed(0)
    policy = tiny_policy()
    cfg = dataclasses.replace(archer_config(), critic_action_samples=k, batch_size=batch_size, grad_accum=1)
    learner = CriticLearner(cfg, policy, seed=0)
    learner.add_episodes(conversation_episodes(policy))
    states = {tuple(p) for p in learner.prompts([learner.buffer[i] for i in range(len(learner.buffer))])}
    return learner, len(states)


@pytest.mark.parametrize("k", [1, 2])
def test_a_phase_decodes_at_most_k_actions_per_state(k: int) -> None:
    learner, states = _learner(k)
    with learner.critic_phase():
        decoded = [learner.step()["actions_decoded"] for _ in range(12)]
    # 12 steps x 8 transitions = 96 draws of a'; at most k decoded per distinct state
    assert sum(decoded) <= k * states < 96
    assert decoded[0] > 0 and decoded[-1] == 0  # all reused by the end


def test_without_a_pool_every_step_decodes_its_whole_batch() -> None:
    learner, _ = _learner(0)
    with learner.critic_phase():
        assert [learner.step()["actions_decoded"] for _ in range(3)] == [8.0, 8.0, 8.0]


def test_pooled_actions_are_the_states_own_draws_and_the_pool_ends_with_its_phase() -> None:
    learner, _ = _learner(2)
    batch = [learner.buffer[i] for i in range(len(learner.buffer))]
    keys = [tuple(p) for p in learner.prompts(batch)]
    with learner.critic_phase():
        seen: dict[tuple[int, ...], set[str]] = {}
        for _ in range(6):
            actions, _ = learner.target_actions(batch)
            for key, action in zip(keys, actions, strict=True):
                seen.setdefault(key, set()).add(action)
        pool = learner._pool
        assert pool is not None
        # every a' used for a state is one of that state's pooled draws, at most 2 of them
        assert all(seen[key] <= set(pool[key]) and 1 <= len(pool[key]) <= 2 for key in keys)
    assert learner._pool is None
    with pytest.raises(RuntimeError, match="boom"), learner.critic_phase():
        assert learner._pool == {}
        raise RuntimeError("boom")
    assert learner._pool is None
    # outside a phase nothing is pooled: a fresh draw each time
    assert learner.target_actions(batch[:3])[1] == 3


def test_draws_are_the_policys_samples_in_order() -> None:
    """The first visit of each state decodes exactly what sample_actions decodes from the
    same generator state: the pool changes which draws are reused, not how they are drawn."""
    learner, _ = _learner(1)
    batch = [learner.buffer[i] for i in range(len(learner.buffer))]
    distinct = {tuple(p): t for p, t in zip(learner.prompts(batch), batch, strict=True)}
    rows = list(distinct.values())
    state = learner.generator.get_state()
    expected = [g.text for g in learner.sample_actions(rows)]
    learner.generator.set_state(state)
    with learner.critic_phase():
        got, decoded = learner.target_actions(rows)
    assert got == expected and decoded == len(rows)


def test_updates_train_with_a_pool_and_the_value_is_validated() -> None:
    torch.manual_seed(0)
    policy = tiny_policy()
    algo = Archer(dataclasses.replace(archer_config(), critic_action_samples=1), policy, seed=0)
    out = algo.update(conversation_episodes(policy))
    assert out["archer/critic_steps"] == 3 and out["archer/actions_decoded"] < 8
    with pytest.raises(ValueError, match="critic_action_samples must be an integer >= 0, got -1"):
        ArcherConfig(critic_action_samples=-1)


def test_profile_script_compares_the_store_with_and_without_a_pool() -> None:
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import archer_smollm2_profile as bench

    out = bench.main(
        ["--model", "tiny", "--episodes", "2", "--critic-phase", "--critic-steps", "4", "--action-samples", "1"]
    )
    assert out is not None and out["with_pool_s"] > 0
    # 4 steps x 64 states without the pool; at most one per distinct state with it
    assert out["with_reuse_decoded"] == 4 * 64 > out["with_pool_decoded"] > 0
    alone = bench.main(
        ["--model", "tiny", "--episodes", "2", "--critic-phase", "--critic-steps", "4", "--action-samples", "1",
         "--pool-only"]
    )
    assert alone is not None and 0 < alone["with_pool_decoded"] <= out["with_pool_decoded"]
