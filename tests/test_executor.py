"""The executor: results in order, one-line errors, and the same numbers under Ray as locally."""

import sys

import pytest
import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor, get_executor
from olvido.training import ArrayDataset, FitConfig, fit


def _offset(shared, item):
    return shared + item


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
    assert finished == {0: 13, 1: 11, 2: 12}
    assert not ray.is_initialized()  # the executor started its own Ray and shut it down
    for mine, theirs in zip(local, remote):
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.equal(mine[name], theirs[name]), name
    assert not torch.equal(local[0]["0.weight"], local[1]["0.weight"])  # seeds matter
