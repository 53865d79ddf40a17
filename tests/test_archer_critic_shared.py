"""ArCHer's critic with a causal encoder (a copy of the policy's body, or the policy's backbone
through a critic LoRA adapter) encodes the states of one conversation in one pass: Q/V values
and gradients equal encoding every state alone, for each pooling; grouping follows the token
ids after left truncation; bidirectional encoders never share."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from conversation_fixtures import conversation_episodes

from agentrl.algorithms.archer import Archer, ArcherConfig, build_critic
from agentrl.algorithms.archer.critic import DoubleCritic, causal_encoder, densify_grads_
from agentrl.policy import ModelConfig, Policy
from agentrl.policy.prefix import prefix_groups

TINY_BERT = {
    "name": "tiny_encoder",
    "tokenizer": "policy",  # the policy's word tokenizer: no special tokens, so prefixes group
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
MAX_LENGTH = 52  # the critic's token budget: the long states below are left-truncated


def tiny_policy(lora: bool = False) -> Policy:
    torch.manual_seed(0)
    return Policy.from_config(
        ModelConfig(
            name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, lora=lora
        ),
        device="cpu",
    )


def config(**kw: object) -> ArcherConfig:
    base: dict[str, object] = dict(
        critic_lr=1e-3,
        actor_lr=1e-4,
        batch_size=8,
        grad_accum=2,
        critic_epochs=2,
        actor_epochs=1,
        warmup_iters=0,
        max_new_tokens=4,
        critic_head_hidden=32,
        critic_model=dict(TINY_BERT),
        critic_max_length=MAX_LENGTH,
    )
    base.update(kw)
    return ArcherConfig(**base)  # type: ignore[arg-type]


def conversation(opening: str, replies: Sequence[str]) -> list[str]:
    """The state texts of one conversation, as ``Episode.states`` builds them."""
    states = [opening]
    for t, reply in enumerate(replies):
        states.append(f"{states[-1]}\n{reply}\nThe answer is {'yes' if t % 2 else 'no'}.")
    return states


SHORT = conversation("We play a game.", ["Is it red?", "Is it big?"])  # 3 states, all < 40
LONG = conversation(  # 3 states; the 2nd and 3rd exceed MAX_LENGTH and are left-truncated
    "Guess the animal I think of.",
    ["Does it live in the sea and eat small fish?", "Is it a mammal with four legs?"],
)
OTHER = "Pick A or B"


def batch() -> tuple[list[str], list[str]]:
    """States mixing a conversation that groups, one whose truncated states cannot, an
    unrelated state and duplicates; an action per state (one duplicate, one empty)."""
    states = [SHORT[1], LONG[0], OTHER, SHORT[0], LONG[2], SHORT[2], LONG[1], SHORT[1]]
    actions = ["Is it big?", "Is it a cat?", "A", "Is it red?", "", "Is it blue?", "no", "A"]
    return states, actions


def make_critic(encoder: str, pooling: str) -> DoubleCritic:
    """A causal critic on the tiny policy: its body copied, or its backbone + a critic LoRA
    adapter whose weights are randomised (peft starts B at 0, which would hide A's gradient)."""
    if encoder == "policy_copy":
        critic = build_critic(
            config(critic_model={"name": "policy"}, critic_pooling=pooling), tiny_policy(), seed=0
        )
    else:
        critic = build_critic(
            config(critic_encoder="policy_lora", critic_pooling=pooling),
            tiny_policy(lora=True),
            seed=0,
        )
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in critic.encoder.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    assert critic.causal
    return critic


def values_and_grads(
    critic: DoubleCritic, states: list[str], actions: list[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(Q_1, Q_2, V_1, V_2)`` stacked, and every parameter's gradient of a loss that
    weighs each value differently (so a value read from the wrong row shows up)."""
    critic.zero_grad(set_to_none=True)
    q1, q2, v1, v2 = critic(states, actions)
    values = torch.stack([q1, q2, v1, v2])
    w = torch.randn(values.shape, generator=torch.Generator().manual_seed(2))
    ((w * values).sum() + (values**2).mean()).backward()
    params = dict(critic.named_parameters())
    densify_grads_(list(params.values()))
    grads = {n: p.grad.clone() for n, p in params.items() if p.grad is not None}
    return values.detach(), grads


def assert_close_grads(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert got.keys() == ref.keys()
    for name, g in ref.items():
        torch.testing.assert_close(got[name], g, rtol=1e-5, atol=1e-5, msg=name)


def test_the_config_decides_which_encoders_are_causal() -> None:
    assert causal_encoder(config(critic_model={"name": "policy"}))
    assert causal_encoder(config(critic_encoder="policy_lora"))
    assert not causal_encoder(config())
    assert not causal_encoder(config(critic_model={"name": "roberta-base"}))
    assert not build_critic(config(), tiny_policy()).causal
    critic = make_critic("policy_copy", "last")
    assert critic.target_copy().causal


def test_the_batch_groups_as_intended() -> None:
    """The fixture itself: SHORT's states are token prefixes of each other, LONG's are too
    before truncation, and after it only LONG[0] is short enough to be kept whole."""
    critic = make_critic("policy_copy", "mean")
    tok = critic.tokens.tokenizer
    whole = [tok(s, add_special_tokens=True)["input_ids"] for s in SHORT + LONG]
    assert len(prefix_groups(whole)[0]) == 2  # untruncated: one root per conversation
    assert all(len(x) < MAX_LENGTH for x in whole[:4]) and len(whole[4]) > MAX_LENGTH
    ids = critic.tokens(SHORT + LONG)
    assert len(prefix_groups(ids)[0]) == 4  # SHORT[2]; LONG[0], LONG[1], LONG[2] alone


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
@pytest.mark.parametrize("encoder", ["policy_copy", "policy_lora"])
def test_shared_pass_values_and_gradients_equal_the_per_state_path(
    encoder: str, pooling: str
) -> None:
    critic = make_critic(encoder, pooling)
    states, actions = batch()
    values, grads = values_and_grads(critic, states, actions)
    shared_positions = critic.encoder_positions
    critic.causal = False  # the same critic, every text encoded alone
    ref_values, ref_grads = values_and_grads(critic, states, actions)
    torch.testing.assert_close(values, ref_values, rtol=1e-5, atol=1e-5)
    assert_close_grads(grads, ref_grads)
    encoder_grads = [g for n, g in grads.items() if n.startswith("encoder.")]
    assert encoder_grads and all(g.abs().sum() > 0 for g in encoder_grads)
    # the state pass ran 4 rows (SHORT[2], LONG[0..2]) + OTHER, not the 7 distinct states
    state_ids = critic.tokens(list(dict.fromkeys(states)))
    width = max(len(x) for x in state_ids)
    assert width == MAX_LENGTH
    action_positions = len(set(actions)) * max(len(x) for x in critic.tokens(actions))
    assert shared_positions == 5 * width + action_positions
    assert critic.encoder_positions - shared_positions == 7 * width + action_positions


def test_a_bidirectional_encoder_never_shares() -> None:
    """The tiny BERT sees a state's later tokens from its earlier positions, so pooling a
    short state from its conversation's longest row gives another vector: each state must be
    encoded alone, which this checks against one-text calls."""
    critic = build_critic(config(critic_pooling="mean"), tiny_policy(), seed=0)
    assert not critic.causal
    ids = critic.tokens(SHORT)
    assert len(prefix_groups(ids)[0]) == 1  # the texts would group
    with torch.no_grad():
        together = critic.embed(SHORT)
        alone = torch.cat([critic.embed([s]) for s in SHORT])
        assert critic.encoder_positions == 3 * len(ids[-1]) + sum(len(x) for x in ids)
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
        critic.causal = True  # what the shared path would give: the check above would fail
        wrong = critic.embed(SHORT)
    assert (wrong[:2] - alone[:2]).abs().max() > 1e-3


def test_an_update_with_the_shared_critic_equals_the_per_state_one() -> None:
    """Two ArCHer updates (critic steps with their target passes, then actor steps whose
    advantages come from the critic) give the same losses either way, in fewer positions."""

    def run(shared: bool) -> tuple[list[dict[str, float]], int]:
        policy = tiny_policy()
        algo = Archer(config(critic_model={"name": "policy"}, critic_max_length=128), policy, 0)
        algo.critic.causal = algo.target_critic.causal = shared
        episodes = conversation_episodes(policy)
        stats = [algo.update(episodes if i == 0 else []) for i in range(2)]
        positions = algo.critic.encoder_positions + algo.target_critic.encoder_positions
        return [{k: v for k, v in s.items() if not k.endswith("_s")} for s in stats], positions

    stats, positions = run(True)
    ref, ref_positions = run(False)
    assert positions < ref_positions
    for got, want in zip(stats, ref, strict=True):
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-5), k
