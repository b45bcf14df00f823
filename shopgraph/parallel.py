"""Where partitioned work runs: in this process, or on a Dask cluster.

Work that splits by users or by rows is written once, as a function of two arguments: what
every partition needs (``shared``: an index, a catalogue) and one partition (a block of users).
An :class:`Engine` maps that function over the partitions and yields the results in the order
of the partitions, so the caller sees the same sequence whichever engine ran it:

* :class:`LocalEngine` (address ``local``, the default) calls it here, in order; it imports
  nothing and needs no engine installed;
* :class:`DaskEngine` (address ``tcp://host:8786``, a Dask scheduler's) sends ``shared`` once to
  every worker (``Client.scatter(broadcast=True)``) and each partition straight to the worker
  that runs its task, keeping a bounded number of partitions in flight so neither the client
  nor the cluster holds them all.

Dask was chosen over Ray and Spark by measurement on this machine (``docs/scale.md``): it
installs in seconds with a fraction of their size, starts a two-worker cluster fastest, has the
least overhead per task, and a cluster on several machines is two commands
(``dask scheduler``, ``dask worker tcp://host:8786``) with nothing else to run.

Lower layers take an :class:`Engine` (or nothing: local) and never import Dask; only
:func:`open_engine` does, and only for a cluster address.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from shopgraph.errors import ConfigError

S = TypeVar("S")
P = TypeVar("P")
R = TypeVar("R")

LOCAL = "local"
"""The address that runs partitions in this process."""


class Engine(Protocol):
    """Maps ``fn(shared, part)`` over ``parts``, yielding the results in the parts' order."""

    workers: int
    """How many parts can run at once."""

    def map(self, fn: Callable[[S, P], R], shared: S, parts: Iterable[P]) -> Iterator[R]:
        """``fn(shared, part)`` for each part, in order."""
        ...


class LocalEngine:
    """Runs every partition here, one after the other (the default; no engine needed)."""

    workers = 1

    def map(self, fn: Callable[[S, P], R], shared: S, parts: Iterable[P]) -> Iterator[R]:
        """``fn(shared, part)`` for each part, in order."""
        for part in parts:
            yield fn(shared, part)

    def __repr__(self) -> str:
        return "LocalEngine()"


class DaskEngine:
    """Runs partitions as tasks on a Dask cluster.

    Args:
        client: a connected ``distributed.Client``.
        in_flight: partitions submitted ahead of the one being collected (default: two per
            worker thread), which bounds the memory partitions take on both sides.
    """

    def __init__(self, client: Any, in_flight: int | None = None) -> None:
        self.client = client
        threads = sum(client.nthreads().values())
        if not threads:
            raise ConfigError(f"the Dask cluster at {client.scheduler.address} has no workers; "
                              "start some with `dask worker <scheduler address>`")
        self.workers: int = threads
        self.in_flight = in_flight or 2 * threads

    def map(self, fn: Callable[[S, P], R], shared: S, parts: Iterable[P]) -> Iterator[R]:
        """``fn(shared, part)`` for each part on the cluster, yielded in order."""
        # In a list of one, as the parts below: a tuple would be scattered element-wise.
        [held] = self.client.scatter([shared], broadcast=True, hash=False)
        pending: deque[tuple[Any, Any]] = deque()
        try:
            for part in parts:
                # The part goes to a worker first, and its task runs there: a part inside the
                # task's arguments would be sent as part of the task graph. Scattered in a list
                # of one, so a part that is itself a sequence goes as one object.
                [data] = self.client.scatter([part], hash=False)
                pending.append((self.client.submit(fn, held, data, pure=False), data))
                if len(pending) >= self.in_flight:
                    yield self._collect(pending.popleft())
            while pending:
                yield self._collect(pending.popleft())
        finally:
            for future, data in pending:
                future.cancel()
                data.release()
            held.release()

    @staticmethod
    def _collect(task: tuple[Any, Any]) -> Any:
        future, data = task
        try:
            return future.result()
        finally:
            data.release()

    def __repr__(self) -> str:
        return f"DaskEngine({self.client.scheduler.address!r}, workers={self.workers})"


@contextmanager
def open_engine(address: str = LOCAL, *, timeout: float = 30) -> Iterator[Engine]:
    """The engine named by ``address``: ``local``, or a Dask scheduler (``tcp://host:8786``).

    Raises:
        ConfigError: the address is neither, Dask is not installed, or the scheduler cannot be
            reached within ``timeout`` seconds.
    """
    if address == LOCAL:
        yield LocalEngine()
        return
    if "://" not in address:
        raise ConfigError(f"engine address {address!r} is neither 'local' nor a Dask scheduler "
                          "address such as tcp://host:8786")
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(f"the engine address {address} needs Dask: "
                          "pip install 'shopgraph[scale]'") from exc
    try:
        # Parts and results go between this client and the workers directly, not through
        # the scheduler: the client must reach the workers' ports too (docs/scale.md).
        client = Client(address, timeout=timeout, set_as_default=False,
                        direct_to_workers=True)
    except OSError as exc:
        raise ConfigError(f"no Dask scheduler answered at {address} within {timeout:g} s; "
                          "start one with `dask scheduler` (see docs/scale.md)") from exc
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise ConfigError(f"the Dask scheduler at {address} has no workers after "
                              f"{timeout:g} s; start some with `dask worker {address}`") from exc
        yield DaskEngine(client)
    finally:
        client.close()
