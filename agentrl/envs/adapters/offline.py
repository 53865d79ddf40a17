"""Run a block of code with the network switched off, to check that a game runs offline.

:func:`no_network` makes every internet socket connection (and every DNS lookup) in this
process raise :class:`NetworkBlocked` while the block runs, and records what was tried.
Unix-domain sockets and loopback addresses (local IPC: e.g. a tracker's local service, which
may run in another thread during the block) keep working. The patch is process-wide for the duration
of the block, so keep the block short (the adapters use it only around a game's first
construction and reset).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock


class NetworkBlocked(OSError):
    """Raised by a connection attempt inside :func:`no_network`.

    An ``OSError``, so libraries that handle a failed connection (e.g. ``nltk.download``
    prints the error and returns ``False``) behave as they would without a network.
    """


@dataclass
class NetworkAttempts:
    """The addresses that code inside :func:`no_network` tried to reach, in order."""

    addresses: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.addresses)

    def summary(self, limit: int = 3) -> str:
        """The first ``limit`` distinct addresses, comma-separated."""
        seen = list(dict.fromkeys(self.addresses))
        more = f" and {len(seen) - limit} more" if len(seen) > limit else ""
        return ", ".join(seen[:limit]) + more


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _local(target: object) -> bool:
    """Whether a connection target is this machine (a loopback host)."""
    return isinstance(target, tuple) and len(target) >= 2 and str(target[0]) in LOOPBACK


def _address(target: object) -> str:
    if isinstance(target, tuple) and len(target) >= 2:
        return f"{target[0]}:{target[1]}"
    return str(target)


@contextmanager
def no_network() -> Iterator[NetworkAttempts]:
    """Block internet connections and DNS lookups inside the ``with`` block.

    Yields a :class:`NetworkAttempts` that lists every blocked address; a blocked attempt
    raises :class:`NetworkBlocked` in the code that made it.
    """
    attempts = NetworkAttempts()
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(target: object) -> NetworkBlocked:
        attempts.addresses.append(_address(target))
        return NetworkBlocked(f"network access is blocked (tried {_address(target)})")

    getaddrinfo, create_connection = socket.getaddrinfo, socket.create_connection

    def guarded_connect(self: socket.socket, address: object) -> None:
        if self.family == socket.AF_UNIX or _local(address):
            return connect(self, address)  # type: ignore[arg-type]
        raise refuse(address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if self.family == socket.AF_UNIX or _local(address):
            return connect_ex(self, address)  # type: ignore[arg-type]
        raise refuse(address)

    def guarded_getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if _local((host, port)):
            return getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]
        raise refuse((host, port))

    def guarded_create_connection(address: object, *args: object, **kwargs: object) -> object:
        if _local(address):
            return create_connection(address, *args, **kwargs)  # type: ignore[arg-type]
        raise refuse(address)

    with (
        mock.patch.object(socket.socket, "connect", guarded_connect),
        mock.patch.object(socket.socket, "connect_ex", guarded_connect_ex),
        mock.patch.object(socket, "getaddrinfo", guarded_getaddrinfo),
        mock.patch.object(socket, "create_connection", guarded_create_connection),
    ):
        yield attempts
