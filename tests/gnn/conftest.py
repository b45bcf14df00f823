"""Fixtures of the GNN tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread: on the shared 2-core test machine, with another job holding
    a core, two threads made the LastFM test 166 s instead of 17 s (threads wait on each other
    at every small op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
