import pytest
import torch

from agentrl.batch import build_turn_batch, discounted_returns
from agentrl.types import Episode, Turn


def _turn(obs, ids, lps, r, term=False, trunc=False):
    return Turn(observation=obs, action=f"a{len(ids)}", prompt_ids=[1, 2], action_ids=ids, action_logprobs=lps,
                reward=r, terminated=term, truncated=trunc, next_observation="" if term or trunc else obs + "'")


def test_discounted_returns():
    assert discounted_returns([-1, -1, 0], 0.5) == pytest.approx([-1.5, -1.0, 0.0])


def test_build_turn_batch_shapes_and_values():
    e1 = Episode("x", {}, 0, turns=[_turn("s0", [5, 6], [-0.1, -0.2], -1.0), _turn("s1", [7], [-0.3], 0.0, term=True)])
    e2 = Episode("x", {}, 1, turns=[_turn("t0", [8, 9, 10], [-1.0, -2.0, -3.0], 1.0, trunc=True)])
    b = build_turn_batch([e1, e2], gamma=0.9)
    assert len(b) == 3
    assert b.action_ids.shape == (3, 3)
    assert b.action_ids.tolist() == [[5, 6, 0], [7, 0, 0], [8, 9, 10]]
    assert b.action_mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert torch.allclose(b.old_logprobs[0], torch.tensor([-0.1, -0.2, 0.0]))
    assert b.returns.tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert b.dones.tolist() == [0.0, 1.0, 1.0]
    assert b.terminated.tolist() == [0.0, 1.0, 0.0]
    assert b.episode_index.tolist() == [0, 0, 1]
    assert b.turn_index.tolist() == [0, 1, 0]
    mb = b.select([2, 0])
    assert mb.actions == [[8, 9, 10], [5, 6]] and mb.action_ids.shape == (2, 3)
    sub = b.select([1])
    assert sub.action_ids.shape == (1, 1)  # trimmed to the minibatch's longest action


def test_build_turn_batch_does_not_mutate_and_checks_lengths():
    e = Episode("x", {}, 0, turns=[_turn("s", [1, 2], [-0.5], 0.0, term=True)])
    with pytest.raises(ValueError, match="2 action ids but 1 log-probs"):
        build_turn_batch([e])
