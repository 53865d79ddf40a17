"""The wheel holds every package, the configs and the tokenizer asset."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"agentrl": "agentrl", "algorithms": "agentrl.algorithms", "rewards": "agentrl.rewards",
          "rollouts": "agentrl.rollouts", "configs": "agentrl.configs"}


def _declared():
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared():
    found = set()
    for top, name in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    missing = found - _declared()
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_wheel_contains_configs_and_assets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("agentrl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("agentrl/configs/config.yaml", "agentrl/configs/algorithm/archer.yaml",
                     "agentrl/configs/env/twenty_questions.yaml", "agentrl/policy/assets/word_tokenizer.json",
                     "agentrl/algorithms/archer/learner.py", "agentrl/rollouts/worker.py", "agentrl/rewards/base.py"):
        assert required in names, required
    assert not any(n.startswith(("algorithms/", "rollouts/", "rewards/", "configs/")) for n in names)
