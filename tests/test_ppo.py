import math

import pytest
import torch

from agentrl.algorithms.ppo.losses import clipped_policy_loss, turn_advantages


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


def test_length_grouped_minibatches_cover_every_row_once():
    from agentrl.algorithms.ppo.learner import length_grouped_minibatches

    lengths = torch.tensor([5, 50, 6, 48, 7, 52, 4, 49])
    mbs = length_grouped_minibatches(lengths, 4, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(mbs).tolist()) == list(range(8))
    spans = sorted(int(lengths[mb].max() - lengths[mb].min()) for mb in mbs)
    assert spans == [3, 4]  # short rows together, long rows together
