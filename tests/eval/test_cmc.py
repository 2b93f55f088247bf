"""CMC arithmetic on toy score matrices worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensic_face.engine.errors import ShapeError
from forensic_face.eval.cmc import (
    cmc_curve,
    mated_ranks,
    plot_cmc,
    rank_k,
    split_scores,
)


def test_ranks_and_cmc_by_hand() -> None:
    # 4 probes, 3 gallery identities.
    scores = np.array(
        [
            [0.9, 0.2, 0.1],  # true 0: best -> rank 1
            [0.5, 0.4, 0.6],  # true 1: 0.6 and 0.5 above 0.4 -> rank 3
            [0.3, 0.7, 0.2],  # true 0: 0.7 above -> rank 2
            [0.1, 0.1, 0.1],  # failed probe (-1) -> unranked
        ]
    )
    mated = np.array([0, 1, 0, -1])
    ranks = mated_ranks(scores, mated)
    assert ranks.tolist() == [1, 3, 2, 0]
    curve = cmc_curve(ranks, 3)
    # denominator is all 4 probes, the failed one included
    assert curve.tolist() == [0.25, 0.5, 0.75]
    assert rank_k(curve, 1) == 0.25
    assert rank_k(curve, 10) == 0.75  # past the gallery size: the last value


def test_ties_rank_pessimistically() -> None:
    scores = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.4]])
    assert mated_ranks(scores, np.array([1, 0])).tolist() == [3, 2]


def test_split_scores() -> None:
    scores = np.array([[0.9, 0.2, 0.1], [0.5, 0.4, 0.6], [0.0, 0.0, 0.0]])
    mated, nonmated = split_scores(scores, np.array([0, 1, -1]))
    assert mated.tolist() == [0.9, 0.4]
    assert sorted(nonmated.tolist()) == [0.1, 0.2, 0.5, 0.6]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ShapeError):
        mated_ranks(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ShapeError):
        mated_ranks(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ShapeError):
        cmc_curve(np.array([1]), 0)


def test_plot_writes_png(tmp_path: Path) -> None:
    out = plot_cmc([("toy", np.array([0.25, 0.5, 0.75]))], tmp_path / "cmc.png", "toy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
