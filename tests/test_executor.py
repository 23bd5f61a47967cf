"""The executor: results in order, one-line errors, and the same numbers under Ray as locally."""

import os
import sys

import pytest
import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor, get_executor
from olvido.training import ArrayDataset, FitConfig, fit


def _offset(shared, item):
    return shared + item


def _count_jobs(shared, item):
    """The worker process a job ran in and how many jobs, this one included, were handed the same object."""
    shared["jobs"] = shared.get("jobs", 0) + 1
    return os.getpid(), shared["jobs"]


def _train(shared, seed):
    """A tiny seeded fit: the weights a worker returns to the driver."""
    inputs, targets = shared
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inputs.shape[1], 8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))
    fit(
        model,
        ArrayDataset(inputs, targets),
        None,
        FitConfig(epochs=3, batch_size=16, lr=1e-2, patience=None, seed=seed),
    )
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _problem():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(96, 5, generator=generator)
    return inputs, inputs @ torch.arange(1.0, 6.0) + 30


def test_local_executor_maps_in_order_with_the_shared_input():
    with LocalExecutor(progress=False) as executor:
        assert executor.map(_offset, [3, 1, 2], shared=10) == [13, 11, 12]
        assert executor.map(_offset, [], shared=10) == []
        assert list(executor.imap(_offset, [3, 1], shared=10)) == [(0, 13), (1, 11)]


def test_a_local_pool_runs_each_job_when_its_result_is_asked_for_in_submission_order():
    calls = []

    def record(shared, item):
        calls.append(item)
        return shared * item

    pool = LocalExecutor(progress=False).pool(record, shared=2)
    assert [pool.submit(5), pool.submit(7)] == [0, 1] and len(pool) == 2 and calls == []
    assert pool.next() == (0, 10) and calls == [5] and len(pool) == 1
    assert pool.submit(1) == 2
    assert [pool.next(), pool.next()] == [(1, 14), (2, 2)] and len(pool) == 0


def test_unknown_executors_and_stray_addresses_are_one_line_errors():
    with pytest.raises(OlvidoError, match="executor 'dask': expected one of local, ray"):
        get_executor("dask")
    with pytest.raises(OlvidoError, match="--ray-address needs --executor ray"):
        get_executor("local", address="auto")


def test_ray_gives_the_same_weights_as_the_local_executor():
    ray = pytest.importorskip("ray", reason="Ray is installed by `make test`; this must not skip there")
    # the workers import this test module's functions by value: tests/ is not on their path
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    problem, seeds = _problem(), [0, 1, 2, 3]
    local = get_executor("local", progress=False, threads=1).map(_train, seeds, shared=problem)
    with get_executor("ray", cpus=2, progress=False) as executor:
        remote = executor.map(_train, seeds, shared=problem)
        finished = dict(executor.imap(_offset, [3, 1, 2], shared=10))  # in the order the tasks finish
        pool = executor.pool(_offset, shared=100)
        handles = {pool.submit(item): item for item in (4, 5, 6)}
        pooled = dict(pool.next() for _ in handles)  # in the order the tasks finish, each under its handle
        assert len(pool) == 0
        # a worker unpickles a pool's shared value once and hands that one object to each of its jobs
        counts = executor.map(_count_jobs, range(8), shared={})
    assert finished == {0: 13, 1: 11, 2: 12}
    assert pooled == {handle: 100 + item for handle, item in handles.items()}
    by_worker = {pid: sorted(n for p, n in counts if p == pid) for pid, _ in counts}
    assert all(jobs == list(range(1, len(jobs) + 1)) for jobs in by_worker.values())
    assert max(len(jobs) for jobs in by_worker.values()) > 1
    assert not ray.is_initialized()  # the executor started its own Ray and shut it down
    for mine, theirs in zip(local, remote):
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.equal(mine[name], theirs[name]), name
    assert not torch.equal(local[0]["0.weight"], local[1]["0.weight"])  # seeds matter
