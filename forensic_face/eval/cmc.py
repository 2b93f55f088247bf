"""Cumulative match characteristic (CMC) arithmetic and plots.

Conventions
    ``scores`` is a ``(P, G)`` float matrix: row ``p`` holds probe ``p``'s similarity to every gallery identity.
    ``mated`` is ``(P,)`` int: the gallery column of probe ``p``'s true identity, or ``-1`` when the probe could
    not be searched (no face found, or its identity failed to enroll). Such probes count as misses at every
    rank, so the denominator of every identification rate is ALL probes.

    Ties are broken pessimistically: a mated score equal to a non-mated one ranks after it, so a constant
    score matrix gives rank G, never rank 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forensic_face.engine import ShapeError

#: Rank value of a probe that was never ranked (failed detection / identity not enrolled).
UNRANKED = 0


def mated_ranks(scores: np.ndarray, mated: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each probe's true identity; :data:`UNRANKED` (0) where ``mated`` is -1.

    >>> mated_ranks(np.array([[0.9, 0.1], [0.8, 0.3]]), np.array([0, 0])).tolist()
    [1, 1]
    """
    scores = np.asarray(scores, dtype=np.float64)
    mated = np.asarray(mated, dtype=np.int64)
    if scores.ndim != 2 or mated.shape != (scores.shape[0],):
        raise ShapeError(f"scores must be (P,G) and mated (P,), got {scores.shape} and {mated.shape}")
    if np.any(mated >= scores.shape[1]) or np.any(mated < -1):
        raise ShapeError(f"mated indices must be in -1..{scores.shape[1] - 1}")
    valid = mated >= 0
    ranks = np.zeros(scores.shape[0], dtype=np.int64)
    if valid.any():
        rows = np.nonzero(valid)[0]
        true = scores[rows, mated[rows]]
        # >= counts the mated score itself, so ties with impostors push the rank down (pessimistic).
        ranks[rows] = (scores[rows] >= true[:, None]).sum(axis=1)
    return ranks


def cmc_curve(ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """``(max_rank,)`` identification rates: entry ``k-1`` is the fraction of probes with 1 <= rank <= k.

    >>> cmc_curve(np.array([1, 2, 0, 1]), 3).tolist()
    [0.5, 0.75, 0.75]
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.ndim != 1:
        raise ShapeError(f"ranks must be (P,), got {ranks.shape}")
    if max_rank < 1:
        raise ShapeError(f"max_rank must be >= 1, got {max_rank}")
    if ranks.size == 0:
        return np.zeros(max_rank, dtype=np.float64)
    hits = np.zeros(max_rank + 1, dtype=np.int64)
    ranked = ranks[(ranks >= 1) & (ranks <= max_rank)]
    np.add.at(hits, ranked, 1)
    return np.cumsum(hits)[1:] / float(ranks.size)


def rank_k(curve: np.ndarray, k: int) -> float:
    """Identification rate at rank ``k`` (the curve's last value when ``k`` is past the gallery size)."""
    return float(curve[min(k, len(curve)) - 1])


def split_scores(scores: np.ndarray, mated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mated scores ``(M,)`` and non-mated scores ``(M*(G-1),)`` of the probes that were ranked."""
    scores = np.asarray(scores, dtype=np.float64)
    mated = np.asarray(mated, dtype=np.int64)
    rows = np.nonzero(mated >= 0)[0]
    if rows.size == 0:
        return np.zeros(0), np.zeros(0)
    true = scores[rows, mated[rows]]
    mask = np.ones((rows.size, scores.shape[1]), dtype=bool)
    mask[np.arange(rows.size), mated[rows]] = False
    return true, scores[rows][mask]


def plot_cmc(
    curves: Sequence[tuple[str, np.ndarray]], path: Path, title: str, max_rank: int | None = None
) -> Path:
    """Write a PNG of one or more CMC curves (matplotlib Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=110)
    try:
        for label, curve in curves:
            n = len(curve) if max_rank is None else min(max_rank, len(curve))
            ax.plot(np.arange(1, n + 1), 100.0 * np.asarray(curve[:n]), label=f"{label} (R1 {100 * curve[0]:.1f}%)",
                    linewidth=1.4)
        ax.set_xscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel("identification rate (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
