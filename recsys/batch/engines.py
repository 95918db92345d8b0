"""Where chunks run: in this process, or on a Dask cluster (the optional ``dask`` extra).

Both engines call the same :func:`~recsys.batch.chunk.run_chunk` on the same tasks, so their
output is identical; they differ only in where the work happens. Results come back in any
order; the job writes and checkpoints each one as it arrives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Protocol

from recsys.batch.chunk import ChunkResult, ChunkSpec, ChunkTask, run_chunk
from recsys.errors import ConfigError
from recsys.model.fitted import FittedModel


class Engine(Protocol):
    name: str

    def run(
        self, model: FittedModel, spec: ChunkSpec, tasks: Iterable[ChunkTask]
    ) -> Iterator[ChunkResult]: ...


class LocalEngine:
    """One chunk after another in this process."""

    name = "local"

    def run(
        self, model: FittedModel, spec: ChunkSpec, tasks: Iterable[ChunkTask]
    ) -> Iterator[ChunkResult]:
        for task in tasks:
            yield run_chunk(model, spec, task)


class DaskEngine:
    """Chunks on Dask workers: a local cluster on 127.0.0.1 by default, or the scheduler at
    ``scheduler``. The model is scattered once to every worker (``broadcast=True``); tasks carry
    only customer keys and their consent; at most ``in_flight`` results wait at a time, so
    memory stays bounded however many chunks a campaign has."""

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        workers: int = 2,
        processes: bool = True,
        in_flight: int | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.processes = processes
        self.in_flight = in_flight

    def _client(self, stack: contextlib.ExitStack):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError(
                "--engine dask needs Dask: pip install 'recsys[dask]' (dask[distributed])"
            ) from exc
        if self.scheduler:
            return stack.enter_context(Client(self.scheduler))
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=self.processes,
                host="127.0.0.1",
                dashboard_address=None,
            )
        )
        return stack.enter_context(Client(cluster))

    def run(
        self, model: FittedModel, spec: ChunkSpec, tasks: Iterable[ChunkTask]
    ) -> Iterator[ChunkResult]:
        from distributed import as_completed

        with contextlib.ExitStack() as stack:
            client = self._client(stack)
            n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
            model_f = client.scatter(model, broadcast=True)
            spec_f = client.scatter(spec, broadcast=True)
            pending = iter(tasks)

            def submit(task: ChunkTask):
                return client.submit(
                    run_chunk,
                    model_f,
                    spec_f,
                    task,
                    key=f"recsys-offers-{spec.job[:16]}-{task.index}",
                    pure=False,
                )

            done = as_completed(
                [submit(t) for t in islice(pending, self.in_flight or 2 * n_workers)]
            )
            for fut in done:
                result = fut.result()
                fut.release()
                nxt = next(pending, None)
                if nxt is not None:
                    done.add(submit(nxt))
                yield result
