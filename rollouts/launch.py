"""Starting or joining Ray for a run (``cluster=local`` / ``cluster=address``).

``local`` starts an embedded single-node cluster that the run owns (and stops): its
dashboard is off unless ``cluster.dashboard=true`` and then binds ``cluster.dashboard_host``
(``127.0.0.1`` by default), and it never joins a cluster named by ``RAY_ADDRESS``.
``address`` joins a running cluster: ``cluster.address`` (``HOST:PORT`` of the GCS,
``ray://HOST:10001`` for Ray Client, or ``auto`` for the cluster ``ray start`` left on this
machine), else the ``RAY_ADDRESS`` environment variable (which ``ray job submit`` sets for
the job's driver). A ``HOST:PORT`` / ``ray://`` address that nothing listens on fails within
seconds with :class:`ClusterError` (Ray itself would retry for minutes).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import ray

from agentrl.cluster import ClusterError
from agentrl.config import ClusterConfig

START_HINT = (
    "start one with `ray start --head --node-ip-address 127.0.0.1 --port 6379` and pass "
    "cluster.address=127.0.0.1:6379 (or auto), or run with cluster=local"
)


def resolve_address(
    cluster: ClusterConfig, environ: dict[str, str] | None = None
) -> tuple[str, str]:
    """``(address, where it came from)`` for ``cluster=address``.

    Raises:
        ClusterError: neither ``cluster.address`` nor ``RAY_ADDRESS`` is set.
    """
    env = os.environ if environ is None else environ
    if cluster.address:
        return str(cluster.address), "cluster.address"
    if env.get("RAY_ADDRESS"):
        return env["RAY_ADDRESS"], "RAY_ADDRESS"
    raise ClusterError(
        "cluster=address needs cluster.address=HOST:PORT | ray://HOST:10001 | auto, or the "
        "RAY_ADDRESS environment variable"
    )


def host_port(address: str) -> tuple[str, int] | None:
    """The TCP endpoint to probe for ``HOST:PORT`` and ``ray://HOST[:PORT]`` (``None`` for
    ``auto``/``local`` and anything else Ray resolves itself)."""
    rest = address.removeprefix("ray://")
    default_port = 10001 if address.startswith("ray://") else None
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, ""
    if not host or host in ("auto", "local"):
        return None
    if port.isdigit():
        return host, int(port)
    return (host, default_port) if default_port and not port else None


def probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing accepts TCP connections at ``address``'s endpoint."""
    endpoint = host_port(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            pass
    except OSError as e:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({type(e).__name__}: {e}); {START_HINT}"
        ) from e


def start_or_join(cluster: ClusterConfig, needed_cpus: float, console: bool = True) -> bool:
    """Start the embedded cluster (``local``) or join ``address``. Returns whether the run
    started Ray here (and so shuts it down); an already initialised Ray is used as is."""
    if ray.is_initialized():
        return False
    if cluster.mode == "local":
        if os.environ.get("RAY_ADDRESS") and console:
            print(
                f"agentrl: cluster=local starts its own Ray; RAY_ADDRESS={os.environ['RAY_ADDRESS']} "
                "is ignored (cluster=address joins it)"
            )
        # Logical CPUs: enough for the learner and every worker even on a 2-core laptop
        # (torch threads, not Ray's bookkeeping, decide the real parallelism).
        num_cpus = cluster.num_cpus or max(os.cpu_count() or 1, int(needed_cpus + 0.999))
        context: Any = ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=cluster.dashboard,
            dashboard_host=cluster.dashboard_host,
            log_to_driver=True,
            configure_logging=False,
        )
        if cluster.dashboard and console:
            print(f"agentrl: Ray dashboard at http://{context.dashboard_url}")
        return True
    address, source = resolve_address(cluster)
    probe(address)
    try:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
    except ConnectionError as e:
        raise ClusterError(
            f"could not join the Ray cluster at {address} (from {source}): {e}; {START_HINT}"
        ) from e
    return True


__all__ = ["ClusterError", "host_port", "probe", "resolve_address", "start_or_join"]
