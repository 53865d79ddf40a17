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
