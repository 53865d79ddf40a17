"""The algorithm plugin of docs/write_your_algorithm.md (examples/my_algorithm/): its loss,
one update, and the page's own command run end to end through the ``agentrl`` entry point."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from agentrl.policy import ModelConfig, Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode, Turn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PAGE = ROOT / "docs" / "write_your_algorithm.md"
MARKER = "<!-- tests/test_plugin_algorithm.py runs the next block -->"
TINY = ModelConfig(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2)


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``my_algorithm.reinforce`` imported into a copy of the registry (undone afterwards)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(ALGORITHMS, "_items", dict(ALGORITHMS._items))
    for name in ("my_algorithm", "my_algorithm.reinforce"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("my_algorithm.reinforce")
    yield module
    for name in ("my_algorithm", "my_algorithm.reinforce"):
        sys.modules.pop(name, None)


def page_command() -> tuple[list[str], list[str]]:
    """The ``cd`` and ``agentrl`` commands of the page's marked bash block."""
    text = PAGE.read_text()
    assert MARKER in text, f"{PAGE} lost the marked command block"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None
    lines = block.group(1).replace("\\\n", " ").strip().splitlines()
    assert len(lines) == 2, lines
    return shlex.split(lines[0]), shlex.split(lines[1])


def test_loss_on_hand_computed_numbers(plugin: ModuleType) -> None:
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss = plugin.reinforce_loss(logp, mask, adv, num_tokens=3.0)
    # -(2*(-1) + 2*(-2) + (-1)*(-0.5)) / 3 = -(-2 - 4 + 0.5) / 3 = 5.5 / 3
    assert loss.item() == pytest.approx(5.5 / 3)
    loss.backward()
    # d loss / d logp = -A * mask / num_tokens; padding gets nothing
    expected = torch.tensor([[-2 / 3, -2 / 3, 0.0], [1 / 3, 0.0, 0.0]])
    assert logp.grad is not None and torch.allclose(logp.grad, expected)


def _episode(action: list[int], reward: float) -> Episode:
    turn = Turn(
        observation="guess",
        action="x",
        prompt_ids=[1, 10, 11, 12],
        action_ids=action,
        action_logprobs=[0.0] * len(action),
        reward=reward,
        terminated=True,
        truncated=False,
    )
    return Episode(env_id="test", task={}, seed=0, turns=[turn])


def test_update_raises_the_rewarded_reply_and_moves_the_baseline(plugin: ModuleType) -> None:
    torch.manual_seed(0)
    policy = Policy.from_config(TINY, device="cpu")
    cfg = plugin.ReinforceEMAConfig(lr=1e-2, baseline_momentum=0.5)
    algo = plugin.ReinforceEMA(cfg, policy, seed=0)
    won, lost = _episode([20, 21], 1.0), _episode([30, 31], 0.0)

    def logp(ep: Episode) -> float:
        with torch.no_grad():
            return float(policy.action_logprobs([ep.turns[0].prompt_ids], [ep.turns[0].action_ids])[0])

    before = logp(won)
    stats = algo.update([won, lost])
    # first update: b = 0, so A = G: +1 for the win, 0 for the loss (no push on it)
    assert stats["reinforce_ema/baseline"] == 0.0
    assert stats["reinforce_ema/stepped"] == 1.0
    assert logp(won) > before + 1e-3
    assert algo.baseline == pytest.approx(0.5 * 0.0 + 0.5 * 0.5)  # m*b + (1-m)*mean G
    state = algo.state_dict()
    torch.save(state, os.devnull)  # plain tensors and numbers: loadable with weights_only
    fresh = plugin.ReinforceEMA(cfg, policy, seed=0)
    fresh.load_state_dict(state)
    assert fresh.baseline == algo.baseline and fresh.num_updates == 1
    assert algo.update([won, lost])["reinforce_ema/baseline"] == pytest.approx(0.25)


def test_bad_config_value_names_key_and_range(plugin: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"baseline_momentum must be in \[0, 1\), got 1.0"):
        plugin.ReinforceEMAConfig(baseline_momentum=1.0)


def test_an_entry_point_finds_it_by_name(plugin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's third way: a package that declares the class under the entry-point group
    ``agentrl.algorithms`` is found by name with no ``imports``."""
    from importlib import metadata

    from agentrl import registry

    group = "agentrl.algorithms"
    point = metadata.EntryPoint(
        name="reinforce_ema", value="my_algorithm.reinforce:ReinforceEMA", group=group
    )

    def installed(group: str) -> list[metadata.EntryPoint]:  # as if the package were installed
        return [point] if group == point.group else []

    monkeypatch.setattr(registry.metadata, "entry_points", installed)
    fresh: registry.Registry[type] = registry.Registry("algorithm", entry_point_group=group)
    assert fresh.names() == ["reinforce_ema"]
    assert fresh.get("reinforce_ema") is plugin.ReinforceEMA


def _agentrl() -> list[str]:
    script = Path(sys.executable).with_name("agentrl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentrl.cli"]


def test_the_page_command_trains_the_plugin(tmp_path: Path) -> None:
    cd, train = page_command()
    assert cd == ["cd", "examples"] and train[:2] == ["agentrl", "train"]
    run_dir = tmp_path / "run"
    extra = [f"run_dir={run_dir}", "logging.progress=false", "logging.tensorboard=false", "logging.plot=false"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [*_agentrl(), *train[1:], *extra],
        cwd=ROOT / cd[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for row in rows[1:]:
        assert row["reinforce_ema/stepped"] == 1.0 and row["reinforce_ema/turns"] > 0
    assert rows[2]["reinforce_ema/baseline"] != 0.0 or rows[1]["reinforce_ema/mean_return_to_go"] == 0.0

    config = json.loads((run_dir / "config.json").read_text())
    assert config["algorithm"]["name"] == "reinforce_ema"
    initial = Policy.from_config(ModelConfig(**config["model"]), device="cpu").get_weights()
    trained = Policy.load(run_dir / "checkpoints" / "step_000002" / "policy", device="cpu").get_weights()
    assert initial.keys() == trained.keys()
    changed = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert changed, "two reinforce_ema updates left every weight as initialised"
