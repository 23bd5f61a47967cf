"""One executor for many-model work (K-model sets, shadows, study cells, trials, shards): local or Ray.

A job is ``function(shared, item)``: ``shared`` is what every job reads (a dataset, a workspace), sent once;
``item`` is the job's own input (a seed, a cell). ``map`` returns the results in the order of the items;
``imap`` yields ``(index, result)`` as each job finishes, so the caller can store it at once.
Functions must be importable module-level functions and must not write the cache: workers return what
they computed (trained weights, predictions) and the caller, on the driver, alone writes it (atomic
writes, keyed by hash), so a cluster needs no shared disk and a killed run resumes with nothing computed
twice.

- ``local`` (default): the jobs one after another in this process, with this process's torch threads (or
  ``threads`` per job: with 1, the same numbers as Ray bit for bit).
- ``ray``: one task per job, one CPU and one torch thread each, ``shared`` through Ray's object store.
  Without an address a local Ray with this machine's cores is started and shut down on ``close``; with
  ``address`` (``auto`` or ``host:port``) olvido joins that cluster and leaves it running.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from olvido.errors import OlvidoError

EXECUTORS = ("local", "ray")


def _in_order(pairs) -> list:
    """The results of ``imap``'s ``(index, result)`` pairs, in the order of the items."""
    done = dict(pairs)
    return [done[index] for index in range(len(done))]


class LocalExecutor:
    """``threads``: torch threads per job (None: this process's setting). Ray tasks run with one thread, and
    floating-point sums split over another number of threads round differently, so ``threads=1`` gives
    the same numbers as Ray bit for bit; the default uses every core for each job instead."""

    name = "local"
    slots = 1  # jobs that run at once: callers that choose work as results come back ask this many at a time

    def __init__(self, progress: bool = True, threads: int | None = None):
        self.progress = progress
        self.threads = threads

    def map(self, function: Callable[[Any, Any], Any], items: Iterable, shared: Any = None, description: str = "jobs"):
        return _in_order(self.imap(function, items, shared, description))

    def imap(self, function: Callable[[Any, Any], Any], items: Iterable, shared: Any = None, description: str = "jobs"):
        """``(index, result)`` pairs as jobs finish (here: in order), so a caller can store each at once."""
        items = list(items)
        bar = tqdm(items, desc=description, unit="job", leave=False, disable=not self.progress or len(items) < 2)
        if self.threads is None:
            for index, item in enumerate(bar):
                yield index, function(shared, item)
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for index, item in enumerate(bar):
                yield index, function(shared, item)
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_thread(function, shared, item):
    """A Ray task: one torch thread, as the task holds one CPU (two threads per task oversubscribe)."""
    import torch

    torch.set_num_threads(1)
    return function(shared, item)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, cpus: int | None = None, progress: bool = True):
        try:
            import ray
        except ImportError:
            raise OlvidoError("executor 'ray': Ray is not installed (pip install 'ray>=2.9')") from None
        self._ray = ray
        self.progress = progress
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address is None:
                ray.init(num_cpus=cpus, **options)
            else:
                try:
                    ray.init(address=address, **options)
                except ConnectionError as error:
                    raise OlvidoError(f"--ray-address {address}: no Ray cluster answered ({error})") from None
        self._task = ray.remote(num_cpus=1)(_one_thread)

    @property
    def slots(self) -> int:
        """Jobs that run at once: the cluster's CPUs (one per task)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def map(self, function: Callable[[Any, Any], Any], items: Iterable, shared: Any = None, description: str = "jobs"):
        return _in_order(self.imap(function, items, shared, description))

    def imap(self, function: Callable[[Any, Any], Any], items: Iterable, shared: Any = None, description: str = "jobs"):
        """``(index, result)`` pairs in the order the tasks finish."""
        items = list(items)
        if not items:
            return
        shared_ref = self._ray.put(shared)
        futures = [self._task.remote(function, shared_ref, item) for item in items]
        index_of = {future: index for index, future in enumerate(futures)}
        pending = list(futures)
        with tqdm(total=len(items), desc=description, unit="job", leave=False, disable=not self.progress) as bar:
            while pending:
                ready, pending = self._ray.wait(pending, num_returns=1)
                for future in ready:
                    yield index_of[future], self._ray.get(future)
                bar.update(len(ready))

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get_executor(
    name: str = "local",
    address: str | None = None,
    cpus: int | None = None,
    progress: bool = True,
    threads: int | None = None,
):
    """``local`` or ``ray`` (``address``/``cpus`` apply to Ray only, ``threads`` to local only)."""
    if name == "local":
        if address is not None:
            raise OlvidoError("--ray-address needs --executor ray")
        return LocalExecutor(progress, threads)
    if name == "ray":
        return RayExecutor(address, cpus, progress)
    raise OlvidoError(f"executor {name!r}: expected one of {', '.join(EXECUTORS)}")
