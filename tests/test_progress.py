"""Progress bars on an interactive console, plain lines (no carriage returns) elsewhere."""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from agentrl.config import load_config
from agentrl.progress import Progress
from agentrl.trainer import Trainer


def _console(terminal: bool) -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(file=out, force_terminal=terminal, width=120), out


def _plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_a_terminal_shows_a_bar_with_done_total_and_eta():
    console, out = _console(terminal=True)
    progress = Progress(console=console)
    assert progress.interactive
    with progress.phase("collecting iteration 3", 5, "episode") as bar:
        for _ in range(5):
            bar.advance()
    text = _plain(out.getvalue())
    assert "collecting iteration 3" in text and "5/5 episodes" in text and "ETA" in text
    assert "\r" in out.getvalue()  # redrawn in place


def test_the_total_can_be_set_once_known():
    console, out = _console(terminal=True)
    with Progress(console=console).phase("warm start", None, "step") as bar:
        bar.set_total(4)
        bar.advance(4)
    assert "4/4 steps" in _plain(out.getvalue())


def test_without_a_terminal_plain_lines_and_no_carriage_returns():
    console, out = _console(terminal=False)
    progress = Progress(console=console)
    assert not progress.interactive
    with progress.phase("warm start", None, "step", plain_updates=True) as bar:
        bar.set_total(20)
        for _ in range(20):
            bar.advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("warm start: step 2/20, ")
    assert lines[-1].startswith("warm start: step 20/20, ")
    with progress.phase("collecting iteration 1", 8, "episode") as bar:  # no plain lines asked
        bar.advance(8)
    assert len(out.getvalue().splitlines()) == 10
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_progress_off_prints_nothing_even_on_a_terminal():
    console, out = _console(terminal=True)
    progress = Progress(enabled=False, console=console)
    with progress.phase("warm start", 3, "step", plain_updates=True) as bar:
        bar.advance(3)
    assert out.getvalue() == ""


def test_a_run_on_a_terminal_shows_collection_evaluation_and_warm_start_bars(
    tiny_overrides, capsys, monkeypatch
):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stdout is a terminal (for every console)
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    cfg = load_config([
        *tiny_overrides, "env=guess_the_number", "iterations=2", "eval.every=2",
        "warm_start.enabled=true", "warm_start.episodes=4", "warm_start.epochs=2",
        "logging.progress=true",
    ])
    Trainer(cfg, console=True).run()
    raw = capsys.readouterr().out
    text = _plain(raw)
    assert "\r" in raw  # bars are redrawn in place
    # rollout.episodes_per_iter=4, eval.episodes=4: every bar reaches its total
    for phase in ("collecting iteration 1", "collecting iteration 2", "evaluating (greedy)",
                  "evaluating (sampled)"):
        assert re.search(re.escape(phase) + r" [━╸╺ ]*4/4 episodes", text), phase
    assert re.search(r"warm start [━╸╺ ]*(\d+)/\1 steps", text)
    assert "warm start: step" not in text  # no plain lines on a terminal
    assert "evaluating: 4 episodes, greedy and sampled ..." in text
    # the table rows stay: the header and iterations 0, 1 and 2
    assert "greedy_succ" in text
    assert [line.split()[0] for line in text.splitlines() if re.match(r"^\s+[0-2]\s+", line)] == [
        "0", "1", "2"
    ]


def test_a_run_in_a_log_file_prints_lines_without_carriage_returns(tiny_overrides, capsys):
    cfg = load_config([
        *tiny_overrides, "env=guess_the_number", "iterations=1",
        "warm_start.enabled=true", "warm_start.episodes=4", "warm_start.epochs=2",
        "logging.progress=true",
    ])
    Trainer(cfg, console=True).run()  # pytest's captured stdout is not a terminal
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    assert re.search(r"^warm start: step (\d+)/\1, \d+ s$", out, re.M)  # the last step's line
    assert "evaluated in" in out and "collecting iteration" not in out
    assert re.search(r"^\s+1\s+\S+", out, re.M)  # iteration 1's table row
