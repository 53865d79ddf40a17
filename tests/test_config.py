"""Every YAML in configs/ composes and validates; bad input fails early with a clear message."""

from pathlib import Path

import pytest

from agentrl.config import ConfigError, TrainConfig, config_dir, load_config, make_dataclass_config
from agentrl.registry import ALGORITHMS, CURRICULA, REWARDS

GROUPS = sorted(p.name for p in config_dir().iterdir() if p.is_dir() and not p.name.startswith("_"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((config_dir() / g).glob("*.yaml"))]


def test_default_config_validates():
    cfg = load_config([])
    assert isinstance(cfg, TrainConfig)
    assert cfg.env.id.startswith("agentrl/")


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_yaml_composes_and_validates(group, option):
    if group == "experiment":
        cfg = load_config([f"+experiment={option}"])
    else:
        cfg = load_config([f"{group}={option}"])
    section = getattr(cfg, group, None)
    registries = {"algorithm": ALGORITHMS, "reward": REWARDS, "curriculum": CURRICULA}
    if group in registries:
        cls = registries[group].get(section["name"])
        if getattr(cls, "Config", None) is not None:
            make_dataclass_config(cls.Config, section, where=f"{group}={option}")


def test_configs_ship_inside_the_package():
    assert (config_dir() / "config.yaml").exists()
    assert Path(config_dir()).parts[-2:] in {("agentrl", "configs"), ("main", "configs")} or (config_dir() / "__init__.py").exists()


def test_unknown_group_option_lists_choices():
    with pytest.raises(ConfigError) as e:
        load_config(["algorithm=foo"])
    assert "foo" in str(e.value) and "ppo" in str(e.value)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="rollout.nope|nope"):
        load_config(["rollout.nope=3"])


def test_bad_type_is_named():
    with pytest.raises(ConfigError, match="iterations"):
        load_config(["iterations=lots"])


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match="rollout.num_workers=0"):
        load_config(["rollout.num_workers=0"])
    with pytest.raises(ConfigError, match="cluster.mode"):
        load_config(["cluster.mode=cloud"])


def test_algorithm_section_validated_against_its_dataclass():
    cls = ALGORITHMS.get("ppo")
    with pytest.raises(ConfigError, match="unknown key.*lrr.*valid keys.*lr"):
        make_dataclass_config(cls.Config, {"name": "ppo", "lrr": 1.0}, where="algorithm=ppo")
    with pytest.raises(ConfigError, match="clip"):
        make_dataclass_config(cls.Config, {"name": "ppo", "clip": 5.0}, where="algorithm=ppo")


def test_name_is_a_registry_key_unless_the_dataclass_has_a_name_field():
    import dataclasses

    from agentrl.policy import ModelConfig

    @dataclasses.dataclass
    class Named:
        name: str = "default"
        size: int = 1

    ppo = make_dataclass_config(ALGORITHMS.get("ppo").Config, {"name": "ppo"}, where="algorithm")
    assert not hasattr(ppo, "name")  # the registry key, dropped
    model = make_dataclass_config(ModelConfig, {"name": "smollm2", "dtype": "bfloat16"}, where="m")
    assert (model.name, model.dtype) == ("smollm2", "bfloat16")  # a model's own name, kept
    assert make_dataclass_config(Named, {"name": "sc1"}, where="named").name == "sc1"
    with pytest.raises(ConfigError, match="unknown key.*sizes"):
        make_dataclass_config(Named, {"name": "sc1", "sizes": 2}, where="named")


def test_cluster_launcher_templates_render_and_pass_ray_validation():
    """configs/cluster/launcher/*.yaml are `ray up` templates, not config-group options:
    each renders for the default run and passes Ray's own launcher checks."""
    from agentrl.cluster import render_launcher, validate_launcher

    templates = sorted((config_dir() / "cluster" / "launcher").glob("*.yaml"))
    assert templates
    for path in templates:
        validate_launcher(render_launcher(load_config([f"cluster.launcher.template={path}"])))


@pytest.mark.parametrize("command", ["train", "config", "eval"])
def test_help_lists_groups_and_keys_with_their_meaning(command, capsys):
    from agentrl.cli import main

    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: agentrl {command}")
    assert "  algorithm   archer, archer_offline, chai, filtered_bc, grpo, ppo, ppo_critic_free, rloo, rltf" in out
    assert "+experiment=option" in out and "smollm2_guess_the_number" in out
    # the keys come with their defaults and the comments that explain them
    assert "keep_kv_cache: true       # keep each conversation's KV cache across turns" in out


def test_check_env_help_is_not_an_env_id(capsys):
    from agentrl.cli import main

    assert main(["check-env", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: agentrl check-env")


def test_config_command_validates_component_sections(capsys):
    from agentrl.cli import main

    assert main(["config", "algorithm.actor_lr=abc"]) == 2
    assert "could not be converted to Float (key: actor_lr)" in capsys.readouterr().err
    assert main(["config", "+algorithm.bogus=1"]) == 2
    assert "unknown key(s) bogus for algorithm=archer; valid keys:" in capsys.readouterr().err
    # a preset's keys for another algorithm: the message says how to drop them, and that works
    preset = ["config", "+experiment=smollm2_toolcalls", "algorithm=filtered_bc"]
    assert main(preset) == 2
    assert "can be dropped with '~algorithm.epochs'" in capsys.readouterr().err
    assert main([*preset, "~algorithm.epochs"]) == 0


def test_a_warm_start_on_an_env_without_a_scripted_player_is_refused_before_any_work():
    from agentrl.validate import validate_components

    bad = ["env.id=agentrl/TextArena-v0", "+env.kwargs.game=Blackjack-v0", "cluster=inline"]
    with pytest.raises(ConfigError, match="warm_start.enabled=true .* set warm_start.enabled=false"):
        validate_components(load_config(bad))
    validate_components(load_config([*bad, "warm_start.enabled=false"]))  # fine
