"""The repository stands alone: no tracked file points at a path outside it.

Every file ``git ls-files`` lists (code, docs, configs, tests, benchmarks, data, this file
too) is read as text and may not name the planning notes kept outside the repository, a
folder of the machine it was written on (the work, shared, home and scratch folders, files
under the system's temporary folder), or link (Markdown) to a file outside the checkout.
System paths that are the same everywhere (``/dev/null``, ``/proc/...``, ``/usr/bin/env``)
and placeholders (``/path/to/...``) are fine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN: dict[str, re.Pattern[str]] = {
    "a planning note outside the repository": re.compile(r"\b(?:DESIGN|ALGORITHMS|STYLE)\.md\b"),
    "a folder of the machine it was written on": re.compile(
        r"(?<![\w.~/-])/(?:work|shared|home|root|Users|mnt|scratch)\b(?![.-])"
    ),
    "a file in the system's temporary folder": re.compile(r"(?<![\w.~/-])/tmp(?:/[\w.$*+-]+)+"),
    "a relative path that climbs out of the repository": re.compile(r"\.\./shared\b"),
}
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def tracked_text_files() -> list[Path]:
    """Every tracked file that decodes as UTF-8 (binary files are skipped)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def outside_references(path: Path) -> list[str]:
    """``file:line: what`` for each reference in ``path`` to something outside the repository."""
    rel = path.relative_to(ROOT)
    found = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append(f"{rel}:{lineno}: {what}: {match.group(0)!r} in {line.strip()[:120]!r}")
        if path.suffix == ".md":
            for target in MARKDOWN_LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue  # a URL (https:, mailto:) or an anchor on the same page
                resolved = (path.parent / target.split("#")[0]).resolve()
                if target.startswith("/") or not resolved.is_relative_to(ROOT):
                    found.append(f"{rel}:{lineno}: a link out of the repository: {target!r}")
    return found


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = tracked_text_files()
    assert len(files) > 50  # the scan really read the checkout
    problems = [p for f in files for p in outside_references(f)]
    assert not problems, "references to paths outside the repository:\n" + "\n".join(problems)


# The examples are put together from parts, so that this file (which the scan reads too)
# names none of the things it forbids.
NOTE = "DESIGN" + ".md"
WORK, SHARED, TMP = "/" + "work", "/" + "shared", "/" + "tmp"


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        (f"see the planning note {NOTE}", True),
        (f"python x.py --out {TMP}/a.json", True),
        (f"cd {WORK}/main", True),
        (f"run_dir={SHARED}/runs/exp1", True),
        ("[notes](" + "../" + "../notes.md)", True),
        ("[design](design.md), [algorithms](algorithms.md)", False),
        ("torch.save(state, '/dev/null'); grep x /proc/cpuinfo", False),
        ("model.name=/path/to/any/hf/model, run_dir=runs/exp1, ~/.cache/agentrl", False),
        (f"tempfile.mkdtemp(dir='{TMP}')", False),
    ],
)
def test_the_check_flags_what_it_should(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, flagged: bool
) -> None:
    nested = tmp_path / "repo" / "docs"
    nested.mkdir(parents=True)
    page = nested / "page.md"
    page.write_text(text + "\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "repo")
    assert bool(outside_references(page)) is flagged


def test_readme_sample_error_is_what_agentrl_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example of an unknown algorithm shows agentrl's real message: the valid
    options, one per line (a new algorithm config must show up there)."""
    from agentrl.cli import main

    readme = (ROOT / "README.md").read_text()
    command = "$ agentrl train algorithm=foo\n"
    assert command in readme
    shown = readme.split(command, 1)[1].split("```", 1)[0]
    assert main(["train", "algorithm=foo"]) == 2
    assert capsys.readouterr().err == shown
