"""Eval tests run torch on one thread: the tiny models do thousands of small ops, and on a shared
2-core machine two OpenMP threads contending with other jobs made them ~10x slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
