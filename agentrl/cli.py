"""The ``agentrl`` command.

    agentrl train [hydra overrides...]        train (see configs/config.yaml)
    agentrl train --help                      config groups, their options, every key's default and meaning
    agentrl train -m a=1,2 b=x,y ...          Hydra multirun: one run per combination, a summary table
    agentrl eval checkpoint=PATH [out=F.json] [overrides]  evaluate a checkpoint as its run did (greedy and
                                              sampled, its decoding settings); prints both, writes JSON
    agentrl export checkpoint=PATH out=DIR [overwrite=true]  the policy as a Hugging Face model folder
                                              (LoRA merged, tokenizer + chat template, model card; docs/export.md)
    agentrl config [overrides...]             print the composed, validated config
    agentrl list                              registered algorithms, rewards, curricula, envs
    agentrl lifelong run|report|list ...      lifelong scenarios and their L2M metrics (docs/lifelong.md)
    agentrl check-env [--import MOD] [--conversation] ID [k=v]
                                         check a text env (Gymnasium checker + agentrl checks;
                                         --conversation: also its conversation info keys)
    agentrl reward collect|synthesize|train   the ARMAP reward-model pipeline (agentrl reward help)
    agentrl plan [key=value...]               reward-guided planning: best_of_n, reflexion, mcts
    agentrl cluster render [overrides] [--out FILE]  a `ray up` YAML sized for the run (docs/cluster.md)
"""

from __future__ import annotations

import sys
from typing import Any

USAGE = __doc__ or ""


HELP_FLAGS = ("-h", "--help")

COMMAND_USAGE = {
    "train": "agentrl train [key=value ...] [group=option ...] [+experiment=NAME]",
    "config": "agentrl config [key=value ...]   (prints the composed, validated config)",
    "eval": "agentrl eval checkpoint=PATH [episodes=N] [seed=S] [out=FILE.json] [key=value ...]",
}


def config_help(command: str) -> str:
    """``agentrl <command> --help``: the usage, every config group with its options, and
    every top-level key with its default and meaning (``configs/config.yaml`` with its
    comments)."""
    from agentrl.config import config_dir

    root = config_dir()
    lines = [f"usage: {COMMAND_USAGE[command]}", "", "Config groups (group=option; experiments: +experiment=option):"]
    for group in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        if options:
            lines.append(f"  {group.name:<11} {', '.join(options)}")
    lines += [
        "",
        "Keys, their defaults and meaning (configs/config.yaml; any key can be set as key=value,",
        "a group's own keys as group.key=value; `agentrl config algorithm=NAME` prints them all):",
        "",
        (root / "config.yaml").read_text().rstrip(),
    ]
    return "\n".join(lines)


def _fail(message: str) -> int:
    print(f"agentrl: error: {message}", file=sys.stderr)
    return 2


def cmd_train(overrides: list[str]) -> int:
    from agentrl.sweep import cmd_multirun, is_multirun

    if is_multirun(overrides):  # -m / --multirun: a sweep (agentrl/sweep.py)
        return cmd_multirun(overrides)
    from agentrl.checkpoint import CheckpointError
    from agentrl.config import ConfigError, load_config
    from agentrl.registry import RegistryError
    from agentrl.trainer import Trainer

    try:
        cfg = load_config(overrides)
        trainer = Trainer(cfg)
    except (ConfigError, RegistryError, CheckpointError) as e:
        return _fail(str(e))
    except Exception as e:  # e.g. gymnasium's unknown env id
        if type(e).__module__.startswith("gymnasium"):
            return _fail(str(e))
        raise
    from agentrl.cluster import ClusterError
    from agentrl.errors import LearnerLost, WorkerLost

    try:
        summary = trainer.run()
    except ClusterError as e:  # Ray not reachable, or the run's placement group does not fit
        return _fail(str(e))
    except (LearnerLost, WorkerLost, CheckpointError) as e:  # nothing written is lost
        return _fail(f"{e} (metrics and checkpoints so far are in {trainer.run_dir})")
    if summary.get("interrupted"):
        return 130
    return 3 if summary.get("stopped") else 0


def cmd_eval(args: list[str]) -> int:
    from agentrl.checkpoint import CheckpointError
    from agentrl.config import ConfigError
    from agentrl.evaluate import evaluate_checkpoint

    opts: dict[str, Any] = {}
    rest = []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in ("checkpoint", "episodes", "seed", "out"):
            opts[key] = value
        else:
            rest.append(a)
    if "checkpoint" not in opts:
        return _fail("eval needs checkpoint=PATH (a checkpoint folder, a run folder, or its checkpoints folder)")
    try:
        result = evaluate_checkpoint(
            opts["checkpoint"],
            episodes=int(opts["episodes"]) if "episodes" in opts else None,
            seed=int(opts["seed"]) if "seed" in opts else None,
            overrides=rest,
        )
    except (ConfigError, CheckpointError, ValueError) as e:
        return _fail(str(e))
    from pathlib import Path

    from agentrl.checkpoint import write_json_atomic
    from agentrl.evaluate import default_output, summary_lines

    out = Path(opts["out"]) if "out" in opts else default_output(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print("\n".join(summary_lines(result)))
    print(f"wrote {out}")
    return 0


EXPORT_USAGE = """usage: agentrl export checkpoint=PATH out=DIR [overwrite=true]
  writes the checkpoint's policy as a Hugging Face model folder: the weights (a LoRA adapter
  merged into them), the tokenizer with its chat template, generation_config.json and a
  README.md model card with the run's config and metrics (docs/export.md).
  checkpoint: a checkpoint folder, a run folder or its checkpoints folder (the latest)
  out:        the folder to write; it must be new or empty
  overwrite:  true replaces an earlier export at out (default false)"""

EXPORT_KEYS = ("checkpoint", "out", "overwrite")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def cmd_export(args: list[str]) -> int:
    if any(a in HELP_FLAGS for a in args):
        print(EXPORT_USAGE)
        return 0
    opts: dict[str, str] = {}
    for a in args:
        key, sep, value = a.partition("=")
        if not sep or key not in EXPORT_KEYS:
            return _fail(f"export takes key=value options {', '.join(EXPORT_KEYS)}; got {a!r}")
        opts[key] = value
    if not opts.get("checkpoint") or not opts.get("out"):
        return _fail(
            "export needs checkpoint=PATH and out=DIR (a checkpoint folder, a run folder or its "
            "checkpoints folder; the model folder to write)"
        )
    overwrite = BOOLEANS.get(opts.get("overwrite", "false").lower())
    if overwrite is None:
        return _fail(f"invalid overwrite={opts['overwrite']!r}: expected true or false")
    from agentrl.checkpoint import CheckpointError
    from agentrl.export import ExportError, export_checkpoint

    try:
        export_checkpoint(opts["checkpoint"], opts["out"], overwrite=overwrite)
    except (CheckpointError, ExportError) as e:
        return _fail(str(e))
    return 0


def cmd_config(overrides: list[str]) -> int:
    from omegaconf import OmegaConf

    from agentrl.config import ConfigError, compose, to_train_config
    from agentrl.registry import RegistryError
    from agentrl.validate import validate_components

    try:
        cfg = compose(overrides)
        # every component's section too (algorithm keys and types, reward, curriculum, env)
        validate_components(to_train_config(cfg))
    except (ConfigError, RegistryError) as e:
        return _fail(str(e))
    print(OmegaConf.to_yaml(cfg))
    return 0


def cmd_check_env(args: list[str]) -> int:
    import yaml

    from agentrl.envs.check import check_text_env

    conversation = False
    while args and args[0] in ("--import", "--conversation"):
        if args[0] == "--conversation":  # also check info["instructions"] / info["message"]
            conversation, args = True, args[1:]
            continue
        if len(args) < 2:
            return _fail("--import needs a module name")
        from agentrl.registry import RegistryError, import_user_modules

        try:  # user modules that register envs
            import_user_modules([args[1]])
        except RegistryError as e:
            return _fail(str(e))
        args = args[2:]
    if not args or "=" in args[0]:
        return _fail(
            "check-env needs an env id or alias, e.g. agentrl check-env maze size=5 "
            "(--import MODULE first to register your own env)"
        )
    kwargs = {}
    for a in args[1:]:
        key, sep, value = a.partition("=")
        if not sep:
            return _fail(f"check-env options are key=value env kwargs, got {a!r}")
        kwargs[key] = yaml.safe_load(value)
    results = check_text_env(args[0], kwargs, conversation=conversation)
    for r in results:
        print(r)
    failed = [r for r in results if r.status == "FAIL"]
    warned = [r for r in results if r.status == "WARN"]
    passed = len(results) - len(failed) - len(warned)
    print(
        f"{args[0]}: {passed}/{len(results)} checks passed, {len(warned)} warnings "
        f"(agentrl's conventions; it still trains), {len(failed)} failures "
        "(Gymnasium's requirements or text spaces)"
    )
    return 1 if failed else 0


def cmd_cluster(args: list[str]) -> int:
    from agentrl.cluster import cmd_cluster as run

    return run(args)


def cmd_lifelong(args: list[str]) -> int:
    from agentrl.lifelong.cli import main as lifelong_main

    return lifelong_main(args)


def cmd_list() -> int:
    import gymnasium as gym

    import agentrl.envs  # noqa: F401
    from agentrl.registry import ALGORITHMS, CURRICULA, REWARDS

    print("algorithms: " + ", ".join(ALGORITHMS.names()))
    print("rewards:    " + ", ".join(REWARDS.names()))
    print("curricula:  " + ", ".join(CURRICULA.names()))
    from agentrl.registry import LIFELONG

    print("lifelong:   " + ", ".join(LIFELONG.names()))
    print("envs:       " + ", ".join(sorted(k for k in gym.registry if k.startswith("agentrl/"))))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in COMMAND_USAGE and any(a in HELP_FLAGS for a in rest):
        print(config_help(cmd))
        return 0
    if cmd == "check-env" and any(a in HELP_FLAGS for a in rest):
        print(
            "usage: agentrl check-env [--import MOD] [--conversation] ENV_ID [key=value ...]\n"
            "  checks a text env: the Gymnasium checker, then agentrl's checks (string\n"
            "  observations, seeded determinism, info keys); --import MOD imports a module that\n"
            "  registers the env first; --conversation also checks info['instructions'] and\n"
            "  info['message'] (docs/howto_env.md)."
        )
        return 0
    from agentrl.reward_cli import cmd_plan, cmd_reward

    commands = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "config": cmd_config, "reward": cmd_reward, "plan": cmd_plan, "check-env": cmd_check_env,
                "lifelong": cmd_lifelong, "cluster": cmd_cluster}
    if cmd == "list":
        return cmd_list()
    if cmd not in commands:
        return _fail(f"unknown command {cmd!r}; valid commands: {', '.join([*commands, 'list'])}")
    return commands[cmd](rest)


if __name__ == "__main__":
    sys.exit(main())
