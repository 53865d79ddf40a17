"""The ``ruleworld`` decoding constraint: a finite-choice grammar over the actions of the
observation's room. Hand-checked masks, every valid action reachable, no invalid action
sampled, constrained log-probs identical in sampling and scoring."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from agentrl.envs.ruleworld import (
    ALL_ACTIONS,
    RuleWorldEnv,
    action_grammar,
    parse_observation,
    room_actions,
)
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.constraints import (
    ChoiceGrammar,
    PromptGrammar,
    TokenConstraint,
    resolve_grammar,
)
from agentrl.policy.tokenizer import (
    TOKENIZERS,
    build_char_tokenizer,
    build_ruleworld_tokenizer,
    build_word_tokenizer,
)

TINY: dict[str, Any] = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)


def _policy(seed: int = 0, tokenizer: str = "word") -> Policy:
    torch.manual_seed(seed)
    return Policy.from_config(ModelConfig(init_seed=seed, tokenizer=tokenizer, **TINY))


def _observations(n: int, depth: int = 2) -> list[str]:
    env = RuleWorldEnv(depth=depth, distractors=2)
    return [env.reset(seed=s)[0] for s in range(n)]


def test_choice_grammar_prefixes_by_hand():
    g = ChoiceGrammar(("ab", "abc", "b", "ab"), terminator="\n")
    assert g.choices == ("ab", "abc", "b")  # sorted, unique
    for text in ["", "a", "ab", "abc", "ab\n", "abc\n", "b", "b\n"]:
        assert g.is_prefix(text), text
    for text in ["c", "ac", "abcd", "ab\n\n", "b\nb", "ba", "\n"]:
        assert not g.is_prefix(text), text
    assert g.is_complete("ab") and not g.is_complete("a") and g.valid_plan("abc\n")
    assert not g.valid_plan("abc\nx")
    two = ChoiceGrammar(("x",), terminator="<>")
    assert two.is_prefix("x<") and two.is_prefix("x<>") and not two.is_prefix("x>")
    with pytest.raises(ValueError):
        ChoiceGrammar(("a\nb",))
    with pytest.raises(ValueError):
        ChoiceGrammar(())


def test_choice_grammar_masks_by_hand_on_the_char_tokenizer():
    tok = build_char_tokenizer()
    g = ChoiceGrammar(("ab", "ac", "b"))
    tc = TokenConstraint(g, tok, len(tok), eos_ids=[tok.eos_token_id])

    def allowed(text: str) -> set[str]:
        ids = tc.allowed(text).nonzero().squeeze(-1).tolist()
        return {"</s>" if i == tok.eos_token_id else tc.token_text[i] for i in ids}

    assert allowed("") == {"a", "b"}
    assert allowed("a") == {"b", "c"}
    assert allowed("ab") == {"\n", "</s>"}
    assert allowed("ab\n") == set()  # ended
    assert allowed("x") == set()


def test_room_actions_and_the_ruleworld_grammar():
    assert room_actions(["red ball", "blue key"]) == [
        "touch blue key with red ball",
        "touch red ball with blue key",
    ]
    assert "touch red ball with red ball" in room_actions(["red ball", "red ball", "blue key"])
    assert "touch red ball with red ball" not in room_actions(["red ball", "blue key"])
    g = resolve_grammar("ruleworld")
    assert isinstance(g, PromptGrammar)
    obs = _observations(1)[0]
    objects, _, _ = parse_observation(obs)
    grammar = g.build(obs + "\nAction: ")
    assert set(grammar.choices) == set(room_actions(objects))
    assert len(grammar.choices) == len(objects) * (len(objects) - 1)
    # the last Room line counts (a prompt with history); no room: every pair of objects
    two_rooms = "Room: red ball, blue key\nLast: x\nRoom: green star, red ball\n"
    assert set(action_grammar(two_rooms).choices) == set(room_actions(["green star", "red ball"]))
    assert action_grammar("Task: nothing here").choices == tuple(sorted(ALL_ACTIONS))


def test_constraint_without_prompt_is_a_clear_error():
    tok = build_word_tokenizer()
    tc = TokenConstraint(resolve_grammar("ruleworld"), tok, len(tok))
    assert tc.needs_prompt
    with pytest.raises(ValueError, match="needs the prompt"):
        tc.allowed("touch")


@pytest.mark.parametrize("tokenizer", ["word", "char", "ruleworld"])
def test_every_valid_action_is_reachable_and_nothing_else(tokenizer):
    """Walk the mask tree from the empty text: the texts that can end (eos or the newline
    terminator) are exactly the room's actions, under the tokenizer's own tokenisation and
    any other that the masks allow."""
    tok = TOKENIZERS[tokenizer]()
    tc = TokenConstraint(resolve_grammar("ruleworld"), tok, len(tok), [tok.eos_token_id])
    prompt = _observations(3)[2] + "\nAction: "
    objects, _, _ = parse_observation(prompt)
    expected = set(room_actions(objects))
    ended: set[str] = set()
    frontier, seen = [""], {""}
    while frontier:
        text = frontier.pop()
        for i in tc.allowed(text, prompt).nonzero().squeeze(-1).tolist():
            if i == tok.eos_token_id:
                ended.add(text)
                continue
            nxt = text + tc.token_text[i]
            if nxt.endswith("\n"):
                ended.add(nxt[:-1])
            elif nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert ended == expected
    for action in expected:  # the tokenizer's own tokenisation is allowed at every step
        ids = tok(action + "\n", add_special_tokens=False)["input_ids"]
        for text, i in zip(tc.texts_of(ids), ids, strict=True):
            assert tc.allowed(text, prompt)[i], (action, text)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_never_writes_an_invalid_action(seed):
    policy = _policy(seed, ["word", "char", "ruleworld"][seed])
    with torch.no_grad():  # a random model made sharper: adversarial preferences
        policy.model.lm_head.weight.mul_(20.0)
    observations = _observations(12, depth=3)
    for greedy in (False, True):
        sampling = SamplingConfig(
            max_new_tokens=40, constraint="ruleworld", greedy=greedy, temperature=1.5
        )
        gens = policy.generate_text(observations, sampling, torch.Generator().manual_seed(seed))
        for obs, g in zip(observations, gens, strict=True):
            objects, _, _ = parse_observation(obs)
            assert g.finish_reason == "stop" and g.text in room_actions(objects), g.text
    plain = policy.generate_text(
        observations, SamplingConfig(max_new_tokens=40), torch.Generator().manual_seed(0)
    )
    assert sum(g.text.startswith("touch ") for g in plain) < len(plain)  # the constraint matters


def test_env_accepts_every_constrained_action():
    """Played through the env, a constrained random policy is never told the action is
    invalid (and rooms change as objects are used up)."""
    policy = _policy(0)
    sampling = SamplingConfig(max_new_tokens=40, constraint="ruleworld")
    gen = torch.Generator().manual_seed(0)
    envs = [RuleWorldEnv(depth=2, distractors=2) for _ in range(6)]
    obs = [e.reset(seed=100 + i)[0] for i, e in enumerate(envs)]
    for _ in range(3):
        gens = policy.generate_text(obs, sampling, gen)
        for i, (e, g) in enumerate(zip(envs, gens, strict=True)):
            o, _, term, trunc, info = e.step(g.text)
            assert not info.get("invalid_action"), g.text
            obs[i] = e.reset(seed=200 + i)[0] if term or trunc else o


def test_constrained_logprobs_match_between_sampling_and_scoring():
    policy = _policy(0)
    observations = _observations(8)
    sampling = SamplingConfig(max_new_tokens=40, constraint="ruleworld")
    gens = policy.generate_text(observations, sampling, torch.Generator().manual_seed(1))
    prompts, actions = [g.prompt_ids for g in gens], [g.token_ids for g in gens]
    with torch.no_grad():
        sums, per_token, _ = policy.action_logprobs(prompts, actions, constraint="ruleworld")
        plain, _, _ = policy.action_logprobs(prompts, actions)
        policy.default_constraint = "ruleworld"
        default, _, _ = policy.action_logprobs(prompts, actions, batch_size=3)
    torch.testing.assert_close(sums, torch.tensor([g.logprob for g in gens]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(default, sums, atol=1e-5, rtol=1e-5)
    assert torch.all(plain < sums)  # renormalised over fewer tokens
    for g, row in zip(gens, per_token, strict=True):
        torch.testing.assert_close(
            row[: len(g.logprobs)], torch.tensor(g.logprobs), atol=1e-4, rtol=1e-4
        )


def test_ruleworld_tokenizer_has_whole_words_and_round_trips():
    tok = build_ruleworld_tokenizer()
    obs = _observations(5, depth=4)
    for o in obs:
        assert tok.decode(tok(o, add_special_tokens=False)["input_ids"]) == o
        # ~4x shorter than with the word tokenizer
        word = build_word_tokenizer()
        assert 3 * len(tok(o)["input_ids"]) < len(word(o)["input_ids"])
    ids = tok("touch red ball with blue key\n", add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == [
        "touch ", "red ", "ball ", "with ", "blue ", "key", "\n"
    ]  # fmt: skip
    assert tok.decode(tok("any other text 123")["input_ids"], skip_special_tokens=True) == (
        "any other text 123"
    )
    with pytest.raises(ValueError, match="ruleworld"):
        ModelConfig(tokenizer="bpe")
