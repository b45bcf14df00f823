"""Readers of the public datasets' line formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopgraph.gnn.data import read_rating_pairs


def test_rating_pairs_ignore_the_rating_and_refuse_an_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "train.txt"
    f.write_text("0 5 1\n0 7 1\n3 5 4\n")
    users, items = read_rating_pairs(f)
    np.testing.assert_array_equal(users, [0, 0, 3])
    np.testing.assert_array_equal(items, [5, 7, 5])
    assert users.dtype == items.dtype == np.int64
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no interactions"):
        read_rating_pairs(tmp_path / "empty.txt")
