"""``agentrl lifelong ...``: run scenarios and report their L2M metrics.

agentrl lifelong run scenario=NAME [ste=true] [overrides...]   play a scenario (init_from=PATH continues one)
agentrl lifelong report RUN_DIR [perf=success] [smoothing=flat|none] [plot=false]
agentrl lifelong list                                          components and scenarios
"""

from __future__ import annotations

import sys

USAGE = __doc__ or ""


def _fail(message: str) -> int:
    print(f"agentrl lifelong: error: {message}", file=sys.stderr)
    return 2


def _split(args: list[str], keys: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    opts, rest = {}, []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in keys:
            opts[key] = value
        else:
            rest.append(a)
    return opts, rest


def cmd_run(args: list[str]) -> int:
    from agentrl.checkpoint import CheckpointError
    from agentrl.config import ConfigError, load_config
    from agentrl.lifelong.scenario import run_scenario
    from agentrl.registry import RegistryError

    opts, overrides = _split(args, ("ste",))
    try:
        cfg = load_config(overrides)
        summary = run_scenario(cfg, ste=opts.get("ste", "false").lower() in ("1", "true", "yes"))
    except (ConfigError, RegistryError, CheckpointError, ValueError) as e:
        return _fail(str(e))
    print(
        f"done: run dir {summary['run_dir']}; report with: agentrl lifelong report {summary['run_dir']}"
    )
    return 0


def cmd_report(args: list[str]) -> int:
    from agentrl.lifelong.report import main

    opts, rest = _split(args, ("perf", "smoothing", "plot"))
    if len(rest) != 1:
        return _fail("report needs exactly one RUN_DIR (a scenario run folder)")
    if opts.get("smoothing", "flat") not in ("flat", "none"):
        return _fail(f"smoothing must be flat or none, got {opts['smoothing']!r}")
    try:
        return main(
            rest[0],
            perf=opts.get("perf", "success"),
            smoothing=opts.get("smoothing", "flat"),
            plot=opts.get("plot", "true").lower() not in ("0", "false", "no"),
        )
    except FileNotFoundError as e:
        return _fail(str(e))


def cmd_list() -> int:
    from agentrl.config import config_dir
    from agentrl.registry import LIFELONG

    print("components: " + ", ".join(LIFELONG.names()))
    print(
        "scenarios:  "
        + ", ".join(sorted(p.stem for p in (config_dir() / "scenario").glob("*.yaml")))
    )
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return cmd_run(rest)
    if cmd == "report":
        return cmd_report(rest)
    if cmd == "list":
        return cmd_list()
    return _fail(f"unknown lifelong command {cmd!r}; valid: run, report, list")
