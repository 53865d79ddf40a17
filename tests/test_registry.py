import pytest

from agentrl.registry import ALGORITHMS, Registry, RegistryError


def test_register_get_and_duplicates():
    reg: Registry = Registry("widget")
    reg.register("a", int)
    assert reg.get("a") is int
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", float)
    reg.register("a", int)  # the same object again is harmless (re-import)


def test_unknown_name_lists_valid_names():
    reg: Registry = Registry("widget")
    reg.register("alpha", int)
    reg.register("beta", float)
    with pytest.raises(RegistryError) as e:
        reg.get("gamma")
    assert "unknown widget 'gamma'" in str(e.value)
    assert "alpha, beta" in str(e.value)


def test_dotted_path():
    reg: Registry = Registry("widget")
    assert reg.get("collections:OrderedDict").__name__ == "OrderedDict"
    with pytest.raises(RegistryError, match="cannot import"):
        reg.get("no_such_module_xyz:Thing")


def test_decorator_and_builtins():
    reg: Registry = Registry("widget")

    @reg.register("thing")
    class Thing:
        pass

    assert reg.get("thing") is Thing
    assert {"ppo", "filtered_bc"} <= set(ALGORITHMS.names())


def test_unknown_algorithm_message():
    with pytest.raises(RegistryError, match="valid names: .*ppo"):
        ALGORITHMS.get("foo")


def test_every_algorithm_yaml_repeats_its_dataclass_defaults():
    import dataclasses
    from pathlib import Path

    import yaml

    from agentrl.algorithm import algorithm_class

    for path in sorted(Path("configs/algorithm").glob("*.yaml")):
        section = yaml.safe_load(path.read_text())
        if "defaults" in section:  # inherits another algorithm's file (archer_offline)
            continue
        cls = algorithm_class(section["name"])
        assert cls.Config is not None
        defaults = {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls.Config)
        }
        for key, value in section.items():
            if key != "name":
                assert defaults[key] == value, f"{path.name}: {key} is {value!r} there, {defaults[key]!r} in {cls.Config.__name__}"


def test_an_algorithm_outside_the_contract_fails_before_any_work(tiny_overrides, monkeypatch):
    from agentrl.config import ConfigError, load_config
    from agentrl.registry import ALGORITHMS
    from agentrl.trainer import Trainer

    class Loose:  # the old duck-typed shape: no AlgorithmBase
        def __init__(self, config, policy, seed=0): ...

    ALGORITHMS.names()  # the built-ins first
    monkeypatch.setitem(ALGORITHMS._items, "loose_test_algo", Loose)
    with pytest.raises(ConfigError, match="must be a subclass of agentrl.algorithm.AlgorithmBase"):
        Trainer(load_config([*tiny_overrides, "algorithm.name=loose_test_algo"]), console=False)
