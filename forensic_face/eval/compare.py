"""Paired comparison of two benchmark runs on the same probes: did B find more true identities at rank 1 than A?

Two runs of ``forensic-face eval`` on the same protocol (same probes, same gallery) differ in one setting, e.g.
the upsampler. Their rank-1 rates alone do not say whether the difference is more than chance: most probes are
found (or missed) by both, and only the probes that one run finds and the other misses carry information.
McNemar's exact test is the two-sided sign test on those discordant probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.engine import ConfigError
from forensic_face.eval.cmc import mated_ranks


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 1/2) of ``wins`` against ``losses``; 1.0 when both are 0.

    >>> round(sign_test_p(10, 0), 4)
    0.002
    """
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class PairedRank1:
    """Rank-1 of two runs on the same probes and McNemar's exact test of their difference."""

    run_a: str
    run_b: str
    num_probes: int
    rank1_a: float  # fraction of all probes
    rank1_b: float
    only_a: int  # probes found at rank 1 by A and not by B
    only_b: int
    mcnemar_p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank1_hits(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probe_names, identities, hit)`` of a run folder (or its ``scores.npz``); ``hit`` is a bool per probe."""
    npz = run / "scores.npz" if run.is_dir() else run
    if not npz.is_file():
        raise ConfigError(f"{npz} does not exist: give a `forensic-face eval` output folder (with scores.npz) "
                          "or its scores.npz")
    with np.load(npz, allow_pickle=False) as data:
        missing = {"scores", "mated_index", "probe_names", "identities"} - set(data.files)
        if missing:
            raise ConfigError(f"{npz} lacks {sorted(missing)}; re-run `forensic-face eval` to write them")
        ranks = mated_ranks(data["scores"], data["mated_index"])
        return data["probe_names"], data["identities"], ranks == 1


def compare_rank1(run_a: Path, run_b: Path) -> PairedRank1:
    """Paired rank-1 comparison of two runs over the same probes and gallery identities (in the same order)."""
    names_a, gallery_a, hit_a = rank1_hits(run_a)
    names_b, gallery_b, hit_b = rank1_hits(run_b)
    if not np.array_equal(names_a, names_b):  # also false when the shapes differ
        raise ConfigError(f"{run_a} and {run_b} searched different probes ({names_a.size} and {names_b.size}); "
                          "compare runs of the same protocol, width, subset and seed")
    if not np.array_equal(gallery_a, gallery_b):
        raise ConfigError(f"{run_a} and {run_b} have different gallery identities; compare runs of the same "
                          "protocol and subset")
    only_a = int((hit_a & ~hit_b).sum())
    only_b = int((hit_b & ~hit_a).sum())
    return PairedRank1(run_a=str(run_a), run_b=str(run_b), num_probes=int(names_a.size),
                       rank1_a=float(hit_a.mean()) if hit_a.size else 0.0,
                       rank1_b=float(hit_b.mean()) if hit_b.size else 0.0,
                       only_a=only_a, only_b=only_b, mcnemar_p=sign_test_p(only_b, only_a))
