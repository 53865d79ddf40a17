"""The greedy evaluation path (issue 18): argmax at every step of whole multi-turn episodes,
the same tasks as the sampled evaluation, independent of the sampling seed, and the
``repeat_rate`` metric."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

import agentrl.policy.sampling as sampling_module
from agentrl.play import episode_jobs, episode_stats, play, repeated_turns
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.rollouts.group import InlineWorkerGroup
from agentrl.rollouts.worker import RolloutWorker
from agentrl.types import Episode, Turn

TQ = "agentrl/TwentyQuestions-v0"
SAMPLING = SamplingConfig(max_new_tokens=8, stop=("\n",))


@pytest.fixture(scope="module")
def policy() -> Policy:
    """A tiny random policy with an untied, scaled-up output head: its greedy replies change
    with the context (a tied random head mostly copies the last input token) and its logits
    are spread out (top-2 margins around 0.5), so a wrong token is far from the maximum."""
    tiny = ModelConfig(
        name="tiny", hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128
    )
    base = Policy.from_config(tiny, device="cpu")
    config = base.model.config
    config.tie_word_embeddings = False
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    return Policy(model, base.tokenizer)


def worker(policy: Policy, conversation: bool) -> RolloutWorker:
    return RolloutWorker(
        TQ, {"max_turns": 4}, 3, SAMPLING, policy=policy, conversation=conversation
    )


def steps_not_argmax(
    policy: Policy, episodes: list[Episode], tol: float = 1e-3
) -> list[tuple[int, int, int]]:
    """``(episode, turn, token)`` of every action token that is not the argmax of a full,
    unbatched, uncached forward over the turn's whole context and the action so far."""
    bad = []
    with torch.no_grad():
        for e, ep in enumerate(episodes):
            for t, (context, turn) in enumerate(zip(ep.contexts(), ep.turns, strict=True)):
                ids = torch.tensor([context + turn.action_ids[:-1]])
                logits = policy.model(input_ids=ids).logits[0, len(context) - 1 :]
                for k, token in enumerate(turn.action_ids):
                    if logits[k, token] < logits[k].max() - tol:
                        bad.append((e, t, k))
    return bad


@pytest.mark.parametrize("conversation", [False, True], ids=["transcript", "conversation"])
def test_greedy_episode_takes_the_argmax_at_every_step(policy: Policy, conversation: bool) -> None:
    # 5 episodes on 3 envs: batched, left-padded prompts of different lengths, envs taking
    # new jobs mid-collect, and (conversation) each context's KV cache kept across turns
    eps = worker(policy, conversation).collect(episode_jobs(5, 100), rng_seed=0, greedy=True)
    assert sum(e.num_turns for e in eps) >= 10
    assert all(t.continues == (conversation and i > 0) for e in eps for i, t in enumerate(e.turns))
    assert steps_not_argmax(policy, eps) == []
    stop = policy.stop_token_mask(SAMPLING.stop)
    for t in [t for e in eps for t in e.turns]:  # each action ends at a stop or the length limit
        assert bool(stop[t.action_ids[-1]]) or len(t.action_ids) == SAMPLING.max_new_tokens
        assert not any(stop[i] for i in t.action_ids[:-1])


def test_the_argmax_check_catches_a_wrong_token(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the check above is not vacuous: a greedy step that takes the runner-up is caught
    def runner_up(scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = scaled.topk(2, dim=-1).indices[:, 1]
        return ids, torch.zeros(len(ids))

    monkeypatch.setattr(sampling_module, "greedy_sample", runner_up)
    eps = worker(policy, conversation=False).collect(episode_jobs(2, 100), rng_seed=0, greedy=True)
    assert len(steps_not_argmax(policy, eps)) == sum(
        len(t.action_ids) for e in eps for t in e.turns
    )


def test_greedy_and_sampled_eval_play_the_same_tasks(policy: Policy) -> None:
    group = InlineWorkerGroup(worker(policy, conversation=False), 2)  # a run's split of the jobs
    played = play(group, episode_jobs(8, 1_000_000), 1_000_000)
    greedy, sampled = played["greedy"], played["sampled"]
    assert (
        [e.seed for e in greedy] == [e.seed for e in sampled] == list(range(1_000_000, 1_000_008))
    )
    assert [e.task for e in greedy] == [e.task for e in sampled]
    assert len({e.task["word"] for e in greedy}) > 1
    # greedy draws nothing: another sampling seed gives the same episodes; sampling differs
    again = play(group, episode_jobs(8, 1_000_000), 7)
    assert [[t.action for t in e.turns] for e in again["greedy"]] == [
        [t.action for t in e.turns] for e in greedy
    ]
    assert [[t.action for t in e.turns] for e in again["sampled"]] != [
        [t.action for t in e.turns] for e in sampled
    ]


def _episode(*actions: str) -> Episode:
    turns = [
        Turn("", a, [1], [2], [0.0], reward=-1.0, terminated=False, truncated=False)
        for a in actions
    ]
    return Episode(env_id=TQ, task={}, seed=0, turns=turns)


def test_repeat_rate_counts_turns_that_repeat_an_earlier_action() -> None:
    looping = _episode("Is it an animal?", "Can it fly?", "is it  an ANIMAL?", "Is it an animal?")
    fresh = _episode("Is it an animal?", "Is it a dog?")
    assert repeated_turns(looping) == [False, False, True, True]
    assert repeated_turns(fresh) == [False, False]  # earlier episodes do not count
    stats = episode_stats("eval", [looping, fresh])
    assert stats["eval/repeat_rate"] == pytest.approx(2 / 6)
    assert episode_stats("eval", [fresh])["eval/repeat_rate"] == 0.0
