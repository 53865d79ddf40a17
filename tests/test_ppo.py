import math

import pytest
import torch

from agentrl.algorithms.ppo.losses import clipped_policy_loss, turn_advantages
from agentrl.types import Episode, Turn


def test_clipped_loss_hand_computed():
    # two utterances; first has 2 tokens, second has 1
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    new = torch.tensor([[math.log(1.5), math.log(0.9)], [math.log(0.5), 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = clipped_policy_loss(new, old, adv, mask, clip=0.2)
    # token 1: ratio 1.5, A=2 -> min(3.0, 1.2*2=2.4) = 2.4
    # token 2: ratio 0.9, A=2 -> min(1.8, 1.8) = 1.8
    # token 3: ratio 0.5, A=-1 -> min(-0.5, 0.8*-1=-0.8) = -0.8
    expected = -(2.4 + 1.8 - 0.8) / 3
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(2 / 3)


def test_clipped_loss_gradient_zero_when_clipped():
    new = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, _ = clipped_policy_loss(new, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), clip=0.2)
    loss.backward()
    assert float(new.grad) == 0.0


def test_turn_advantages_mean_baseline():
    returns = torch.tensor([1.0, 3.0, 5.0, 5.0])
    turn = torch.tensor([0, 0, 1, 1])
    adv = turn_advantages(returns, turn, baseline="mean", normalize=False)
    assert adv.tolist() == [-1.0, 1.0, 0.0, 0.0]
    norm = turn_advantages(returns, turn, baseline="mean", normalize=True)
    assert float(norm.std()) == pytest.approx(1.0, abs=1e-5)


def _episode(prompt_len: int, turns: int, continues: bool) -> Episode:
    return Episode(
        env_id="e",
        task={},
        seed=0,
        turns=[
            Turn("o", "a", [1] * prompt_len, [2], [0.0], 0.0, t == turns - 1, False, continues=continues and t > 0)
            for t in range(turns)
        ],
    )


def test_segment_minibatches_cover_every_row_once_grouped_by_length():
    from agentrl.batch import build_turn_batch, segment_minibatches

    # transcript episodes: one segment per turn, grouped by length
    lengths = [5, 50, 6, 48, 7, 52, 4, 49]
    batch = build_turn_batch([_episode(n, 1, False) for n in lengths])
    mbs = segment_minibatches(batch, 4, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(mbs).tolist()) == list(range(8))
    seg_len = torch.tensor([len(s) for s in batch.segments])
    spans = sorted(int(seg_len[mb].max() - seg_len[mb].min()) for mb in mbs)
    assert spans == [3, 4]  # short rows together, long rows together
    # conversations: a minibatch holds whole conversations (every turn of its segments)
    batch = build_turn_batch([_episode(3, 4, True) for _ in range(6)])
    assert len(batch.segments) == 6 and len(batch) == 24
    mbs = segment_minibatches(batch, 8, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(mbs).tolist()) == list(range(24))
    for mb in mbs:
        segs = set(batch.segment_index[mb].tolist())
        assert len(mb) == 4 * len(segs) == 8
