"""Launching and resources: joining a cluster (address / auto / RAY_ADDRESS) with clear
errors, placement groups, the ``ray up`` template rendered from a run config, and a real
two-node run (head + second node started with ``ray start`` on this machine)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from agentrl.cluster import (
    ClusterError,
    cmd_cluster,
    node_resources,
    render_launcher,
    validate_launcher,
)
from agentrl.config import ClusterConfig, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.intermediate_size=64",
    "model.num_heads=2",
]


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# --- addresses -------------------------------------------------------------------------------
def test_address_comes_from_config_then_ray_address_else_a_clear_error():
    from agentrl.rollouts.launch import resolve_address

    env = {"RAY_ADDRESS": "10.0.0.5:6379"}
    assert resolve_address(ClusterConfig(mode="address", address="auto"), env) == (
        "auto",
        "cluster.address",
    )
    assert resolve_address(ClusterConfig(mode="address"), env) == ("10.0.0.5:6379", "RAY_ADDRESS")
    with pytest.raises(ClusterError, match="cluster.address=HOST:PORT .*RAY_ADDRESS"):
        resolve_address(ClusterConfig(mode="address"), {})


def test_host_port_of_each_address_form():
    from agentrl.rollouts.launch import host_port

    assert host_port("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert host_port("ray://head:10001") == ("head", 10001)
    assert host_port("ray://head") == ("head", 10001)
    assert host_port("auto") is None and host_port("local") is None


def test_nothing_listening_fails_within_seconds_naming_the_address():
    from agentrl.rollouts.launch import probe

    (port,) = free_ports(1)
    start = time.monotonic()
    with pytest.raises(
        ClusterError, match=f"no Ray cluster answers at 127.0.0.1:{port}.*ray start"
    ):
        probe(f"127.0.0.1:{port}")
    with pytest.raises(ClusterError, match=f"ray://127.0.0.1:{port}"):
        probe(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - start < 30  # Ray itself retries for minutes


def _train_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "agentrl.cli", "train", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _clean_env(tmp: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if tmp is not None:
        env["RAY_TMPDIR"] = tmp  # an isolated `auto`: ray_current_cluster lives under it
    return env


def test_train_cli_reports_a_missing_cluster(tmp_path):
    """``agentrl train cluster=address`` with RAY_ADDRESS at a closed port: exit 2 and one
    clear line, no traceback. (``auto`` with nothing started is not tested: Ray's ``auto``
    falls back to any Ray it finds on the machine, e.g. another test session's.)"""
    (port,) = free_ports(1)
    proc = _train_cli(
        [*TINY, "algorithm=ppo", "env=guess_the_number", "warm_start.enabled=false",
         "cluster=address", f"run_dir={tmp_path / 'a'}"],
        {**_clean_env(), "RAY_ADDRESS": f"127.0.0.1:{port}"},
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"agentrl: error: no Ray cluster answers at 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- config ----------------------------------------------------------------------------------
def test_placement_settings_are_validated():
    cfg = load_config(
        ["cluster.placement_strategy=STRICT_SPREAD", "rollout.num_gpus_per_worker=0.5"]
    )
    assert cfg.cluster.placement_strategy == "STRICT_SPREAD"
    assert cfg.rollout.num_gpus_per_worker == 0.5
    assert cfg.cluster.dashboard is False and cfg.cluster.dashboard_host == "127.0.0.1"
    with pytest.raises(ConfigError, match="placement_strategy='NEAR'.*PACK, SPREAD"):
        load_config(["cluster.placement_strategy=NEAR"])
    with pytest.raises(ConfigError, match="placement bundle needs a resource"):
        load_config(["rollout.num_cpus_per_worker=0"])


# --- the ray up template ---------------------------------------------------------------------
RENDER = [
    "rollout.num_workers=5",
    "rollout.num_cpus_per_worker=1.5",
    "rollout.num_gpus_per_worker=0.25",
    "cluster.learner_num_cpus=4",
    "cluster.learner_num_gpus=1",
    "cluster.launcher.workers_per_node=2",
    "cluster.launcher.cluster_name=exp7",
]


def test_render_sizes_the_node_types_from_the_run_config():
    cfg = load_config(RENDER)
    # 2 workers per node: ceil(2 x 1.5) = 3 CPU, ceil(2 x 0.25) = 1 GPU; ceil(5 / 2) = 3 nodes
    assert node_resources(cfg) == {
        "learner": {"resources": {"CPU": 4, "GPU": 1}, "count": 1},
        "rollout": {"resources": {"CPU": 3, "GPU": 1}, "count": 3, "workers_per_node": 2},
    }
    out = render_launcher(cfg)
    types = out["available_node_types"]
    assert types["learner"]["resources"] == {"CPU": 4, "GPU": 1}
    assert types["learner"]["min_workers"] == types["learner"]["max_workers"] == 1
    assert types["rollout"]["resources"] == {"CPU": 3, "GPU": 1}
    assert types["rollout"]["min_workers"] == types["rollout"]["max_workers"] == 3
    assert out["max_workers"] == 4 and out["cluster_name"] == "exp7"
    assert out["head_node_type"] == "head" and out["provider"]["type"] == "aws"
    validate_launcher(out)  # Ray's own schema and consistency checks (as `ray up` runs them)
    # fewer workers than workers_per_node: one node sized for the workers there are
    small = node_resources(
        load_config(["rollout.num_workers=1", "cluster.launcher.workers_per_node=4"])
    )
    assert small["rollout"] == {"resources": {"CPU": 1}, "count": 1, "workers_per_node": 1}


def test_ray_validation_rejects_a_broken_launcher_config():
    out = render_launcher(load_config([]))
    out["available_node_types"]["rollout"]["resources"]["CPU"] = 1.5  # Ray wants whole units
    with pytest.raises(ClusterError, match="Ray rejects the launcher config"):
        validate_launcher(out)
    with pytest.raises(ClusterError, match="'learner' and 'rollout'.*missing: rollout"):
        render_launcher(load_config([]), template={"available_node_types": {"learner": {}}})


def test_cluster_render_cli_writes_valid_yaml(tmp_path, capsys):
    out = tmp_path / "cluster.yaml"
    assert cmd_cluster(["render", *RENDER, "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Rendered by: agentrl cluster render rollout.num_workers=5")
    assert "agentrl train cluster=address rollout.num_workers=5" in text
    config = yaml.safe_load(text)
    assert config["available_node_types"]["rollout"]["max_workers"] == 3
    validate_launcher(config)
    printed = capsys.readouterr().out
    assert "rollout: 3 node(s) {'CPU': 3, 'GPU': 1} (5 workers, 2 per node" in printed
    # a custom template, and bad input
    custom = tmp_path / "mine.yaml"
    custom.write_text(text.replace("m5.xlarge", "c7i.2xlarge"))
    assert cmd_cluster(["render", f"cluster.launcher.template={custom}", "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["available_node_types"]["rollout"]["node_config"] == {
        "InstanceType": "c7i.2xlarge"
    }
    assert cmd_cluster(["render", "cluster.launcher.template=/nonexistent.yaml"]) == 2
    assert cmd_cluster(["render", "rollout.num_workers=0"]) == 2
    assert cmd_cluster(["plot"]) == 2
    assert "cluster.launcher.template=/nonexistent.yaml" in capsys.readouterr().err


# --- placement groups (the session's Ray cluster: one node, 2 CPUs) --------------------------
@pytest.mark.ray
def test_placement_group_reserves_learner_and_worker_bundles(ray_cluster):
    from agentrl.rollouts.placement import place

    ray = ray_cluster
    before = ray.available_resources().get("CPU", 0.0)
    placement = place(2, 0.5, 0.0, 0.5, 0.0, strategy="PACK", timeout_s=30)
    try:
        assert placement.bundles == [{"CPU": 0.5}, {"CPU": 0.5}, {"CPU": 0.5}]
        node = ray.get_runtime_context().get_node_id()
        assert placement.bundle_nodes() == [node, node, node]

        @ray.remote(num_cpus=0.5)
        def where() -> str:
            return ray.get_runtime_context().get_node_id()

        assert (
            ray.get(where.options(scheduling_strategy=placement.worker_strategy(1)).remote())
            == node
        )
        deadline = time.monotonic() + 10
        while ray.available_resources().get("CPU", 0.0) > before - 1.5 + 1e-6:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.1)
    finally:
        placement.shutdown()
        placement.shutdown()  # idempotent (the trainer may remove it twice on a rebuild)
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0.0) < before - 1e-6:
        assert time.monotonic() < deadline, "the group's CPUs were not freed"
        time.sleep(0.1)


@pytest.mark.ray
def test_unplaceable_group_fails_naming_bundles_and_nodes(ray_cluster):
    from agentrl.rollouts.placement import place

    ray = ray_cluster
    # 3 bundles, each on its own node, on a one-node cluster: never placeable
    with pytest.raises(ClusterError) as e:
        place(2, 0.1, 0.0, 0.1, 0.0, strategy="STRICT_SPREAD", timeout_s=2)
    msg = str(e.value)
    assert "STRICT_SPREAD" in msg and "within 2 s" in msg
    assert "learner {CPU: 0.1} + 2 rollout workers x {CPU: 0.1}" in msg
    assert "CPU: 2" in msg and "one node per bundle" in msg
    # the pending group was removed: nothing stays reserved or queued
    table = ray.util.placement_group_table()
    assert all(g["state"] in ("CREATED", "REMOVED") for g in table.values())


# --- a real two-node cluster -----------------------------------------------------------------
def _kill_cluster(tmp: str) -> None:
    """End exactly the processes of this cluster (they carry RAY_TMPDIR=tmp in their
    environment): never `ray stop`, which would end every Ray on the machine."""
    marker = f"RAY_TMPDIR={tmp}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


@pytest.fixture
def two_node_cluster():
    """A head (2 CPU, resource node_a) and a second node (2 CPU, node_b) on this machine,
    started with ``ray start``, dashboard off, in their own temp dir; always torn down."""
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix socket paths
    env = _clean_env(tmp)
    ray_bin = str(Path(sys.executable).parent / "ray")
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats",
              "--object-store-memory", str(80 * 2**20)]  # fmt: skip

    def node_ports(q: list[int]) -> list[str]:
        return ["--node-manager-port", str(q[0]), "--object-manager-port", str(q[1]),
                "--dashboard-agent-listen-port", str(q[2]), "--dashboard-agent-grpc-port", str(q[3]),
                "--metrics-export-port", str(q[4]), "--runtime-env-agent-port", str(q[5])]  # fmt: skip

    def start(p: list[int]) -> str:
        """Start both nodes on ports ``p``; ``""`` or the failing ``ray start``'s output."""
        for args in (
            ["--head", "--port", str(p[0]), "--include-dashboard=false",
             "--ray-client-server-port", str(p[1]), "--resources", '{"node_a": 1}', *node_ports(p[2:8])],
            ["--address", f"127.0.0.1:{p[0]}", "--resources", '{"node_b": 1}', *node_ports(p[8:14])],
        ):  # fmt: skip
            started = subprocess.run(
                [ray_bin, "start", *common, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if started.returncode != 0:
                return started.stdout[-2000:] + started.stderr[-2000:]
        return ""

    try:
        # free_ports only finds ports free *now*: another Ray starting on this machine at the
        # same moment can take one (GCS then fails to bind), so try again on fresh ports.
        for _ in range(3):
            p = free_ports(15)
            error = start(p)
            if not error:
                break
            _kill_cluster(tmp)
        assert not error, error
        yield {"env": env, "address": f"127.0.0.1:{p[0]}", "tmp": tmp}
    finally:
        _kill_cluster(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow  # ~1 min: starts a second Ray node (run with pytest -m slow)
@pytest.mark.ray
def test_two_node_run_spreads_workers_over_both_nodes(two_node_cluster, tmp_path):
    """`cluster=address` via RAY_ADDRESS (as `ray job submit` sets it), SPREAD placement:
    the two rollout workers run on different nodes; `auto` finds the same cluster.

    SPREAD is best effort: 3 bundles on 2 nodes share a node. The learner's bundle is the
    smaller one (0.5 CPU), so the workers' 1-CPU bundles take the two nodes whether Ray
    places the larger bundles first or breaks the tie by the least used node."""
    env = two_node_cluster["env"]
    run_dir = tmp_path / "run"
    proc = _train_cli(
        [*TINY, "cluster=address", "cluster.placement_strategy=SPREAD", "algorithm=ppo",
         "env=guess_the_number", "iterations=1", "rollout.num_workers=2",
         "rollout.envs_per_worker=2", "rollout.episodes_per_iter=4",
         "rollout.num_cpus_per_worker=1", "cluster.learner_num_cpus=0.5", "eval.episodes=2",
         "eval.sample=false", "warm_start.enabled=false", "logging.tensorboard=false",
         "logging.plot=false", "logging.progress=false", f"run_dir={run_dir}"],
        {**env, "RAY_ADDRESS": two_node_cluster["address"]},
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "agentrl: placement (SPREAD)" in proc.stdout
    info = json.loads((run_dir / "placement.json").read_text())
    by_resource = {
        name: node_id
        for node_id, node in info["nodes"].items()
        for name in ("node_a", "node_b")
        if name in node["resources"]
    }
    assert set(by_resource) == {"node_a", "node_b"} and len(info["nodes"]) == 2
    assert sorted(info["worker_nodes"]) == sorted(by_resource.values())  # one worker per node
    assert info["learner_node"] in by_resource.values()
    assert info["strategy"] == "SPREAD" and len(info["bundles"]) == 3
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1] and rows[1]["episodes_total"] == 4
    # `auto` joins this cluster (the address `ray start` left under RAY_TMPDIR); then
    # cluster=local starts its own one-node Ray even with RAY_ADDRESS naming this cluster
    script = (
        "import os, ray; from agentrl.config import ClusterConfig; "
        "from agentrl.rollouts.launch import start_or_join; "
        "nodes = lambda: sorted(k for n in ray.nodes() for k in n['Resources'] if k.startswith('node_')); "
        "print('auto', start_or_join(ClusterConfig(mode='address', address='auto'), 0), nodes()); "
        "ray.shutdown(); os.environ['RAY_ADDRESS'] = os.environ['TEST_CLUSTER']; "
        "print('local', start_or_join(ClusterConfig(mode='local', num_cpus=1), 0), nodes(), len(ray.nodes()))"
    )
    probe = subprocess.run(
        [sys.executable, "-c", script], env={**env, "TEST_CLUSTER": two_node_cluster["address"]}, cwd=tmp_path, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "auto True ['node_a', 'node_b']" in probe.stdout
    assert "local True [] 1" in probe.stdout
    assert "cluster=local starts its own Ray; RAY_ADDRESS=" in probe.stdout
