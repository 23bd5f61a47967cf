"""One executor for many-model work (K-model sets, shadows, study cells, trials, shards): local or Ray.

A job is ``function(shared, item)``: ``shared`` is what every job reads (a dataset, a workspace), sent once;
``item`` is the job's own input (a seed, a cell). ``map`` returns the results in the order of the items;
``imap`` yields ``(index, result)`` as each job finishes, so the caller can store it at once; ``pool`` takes
jobs one at a time and hands back each result as it finishes, for callers that choose the next job from the
last result (tuning: prune a trial or run its other seeds) and so keep every worker busy.
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
        return _drain(LocalPool(function, shared, self.threads), list(items), description, self.progress)

    def pool(self, function: Callable[[Any, Any], Any], shared: Any = None) -> "LocalPool":
        return LocalPool(function, shared, self.threads)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _drain(pool, items: list, description: str, progress: bool):
    """Every item through ``pool``; ``(index, result)`` pairs as jobs finish."""
    for item in items:
        pool.submit(item)
    quiet = not progress or len(items) < 2
    with tqdm(total=len(items), desc=description, unit="job", leave=False, disable=quiet) as bar:
        while len(pool):
            yield pool.next()
            bar.update()


class LocalPool:
    """Jobs run here, one at a time in the order submitted, when a result is asked for (``next``)."""

    def __init__(self, function: Callable[[Any, Any], Any], shared: Any, threads: int | None):
        self.function, self.shared, self.threads = function, shared, threads
        self._queue: list[tuple[int, Any]] = []
        self._submitted = 0

    def submit(self, item) -> int:
        """Queue a job; its handle (0, 1, ... in submission order)."""
        self._queue.append((self._submitted, item))
        self._submitted += 1
        return self._submitted - 1

    def __len__(self) -> int:
        """Jobs submitted and not yet handed back."""
        return len(self._queue)

    def next(self) -> tuple[int, Any]:
        """``(handle, result)`` of the oldest pending job, run now."""
        handle, item = self._queue.pop(0)
        if self.threads is None:
            return handle, self.function(self.shared, item)
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return handle, self.function(self.shared, item)
        finally:
            torch.set_num_threads(before)


class RayPool:
    """Jobs as Ray tasks, started as they are submitted (the cluster queues what its CPUs cannot run yet);
    ``shared`` goes to the object store once."""

    def __init__(self, ray, task, function: Callable[[Any, Any], Any], shared: Any):
        self._ray, self._task, self.function = ray, task, function
        self._shared = ray.put(shared)
        self._pending: dict = {}
        self._submitted = 0

    def submit(self, item) -> int:
        # the reference goes in a list so that Ray hands it over unresolved: the task unpickles it once per
        # worker (``_worker_shared``), not once per job
        self._pending[self._task.remote(self.function, [self._shared], item)] = self._submitted
        self._submitted += 1
        return self._submitted - 1

    def __len__(self) -> int:
        return len(self._pending)

    def next(self) -> tuple[int, Any]:
        """``(handle, result)`` of the first pending job to finish (waits for one)."""
        (ready,), _ = self._ray.wait(list(self._pending), num_returns=1)
        return self._pending.pop(ready), self._ray.get(ready)


# What a Ray worker process last unpickled of a pool's ``shared``, by object id: the jobs of one pool that
# land on the same worker (most of them) read it without unpickling it again (a workspace takes 0.1-0.4 s,
# as long as a small job). As with the local pool, every job of a pool sees the same object.
_worker_shared: dict[str, Any] = {}


def _one_thread(function, shared_box: list, item):
    """A Ray task: one torch thread, as the task holds one CPU (two threads per task oversubscribe)."""
    import ray
    import torch

    torch.set_num_threads(1)
    (reference,) = shared_box
    key = reference.hex()
    if key not in _worker_shared:
        _worker_shared.clear()  # one pool's value at a time: a worker never pins more than one
        _worker_shared[key] = ray.get(reference)
    return function(_worker_shared[key], item)


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
            return iter(())
        return _drain(self.pool(function, shared), items, description, self.progress)

    def pool(self, function: Callable[[Any, Any], Any], shared: Any = None) -> RayPool:
        return RayPool(self._ray, self._task, function, shared)

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
