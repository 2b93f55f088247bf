"""Ranking (paper section 3.4, last step): fused scores per portrait -> identities best first -> candidates
with what an examiner needs to review them (per-scale scores, the best probe hypothesis, the gallery
hypotheses that matched it best, the similarity matrices for heatmaps).

Gallery hypothesis *images* are not made here: a candidate names its best variants (path, scale, score,
target size) and the views that show them ask :meth:`Engine.with_gallery_images` for the pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from forensic_face.engine.fusion import FusedScores
from forensic_face.engine.results import (
    Candidate,
    GalleryEntry,
    GalleryHypothesis,
    ProbeHypothesis,
)

#: How many best degraded gallery variants each candidate names.
NUM_GALLERY_VARIANTS_SHOWN = 4


def rank_identities(scores: np.ndarray, entries: Sequence[GalleryEntry]) -> list[tuple[str, int]]:
    """``(identity, index of its best portrait)`` best first; an identity with several portraits scores as its
    best one; ties break by identity name so the order is reproducible.

    >>> from types import SimpleNamespace as E
    >>> rank_identities(np.array([0.1, 0.5, 0.3]), [E(identity="a"), E(identity="b"), E(identity="a")])
    [('b', 1), ('a', 2)]
    """
    best_entry: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.identity not in best_entry or scores[i] > scores[best_entry[entry.identity]]:
            best_entry[entry.identity] = i
    return sorted(best_entry.items(), key=lambda kv: (-scores[kv[1]], kv[0]))


def build_candidates(
    ranked: Sequence[tuple[str, int]],
    entries: Sequence[GalleryEntry],
    fused: FusedScores,
    labels: tuple[str, ...],
    targets: dict[int, int | None],
    top_k: int,
    best_probe_hypothesis: Callable[[int, int], ProbeHypothesis],
    member_names: Sequence[str] = (),
) -> tuple[Candidate, ...]:
    """The ``top_k`` best identities as :class:`Candidate` s. ``labels``: the gallery hypothesis columns;
    ``targets``: the resolution-matching size of each scale; ``best_probe_hypothesis(scale, row)`` gives the
    image of a probe hypothesis; ``member_names``: a recognizer ensemble's members, in the column order of
    ``fused.member_scores``."""
    scales = fused.scales
    scores = fused.scores.float().cpu().numpy()
    per_scale = fused.per_scale_scores.float().cpu().numpy()
    best_rows = fused.best_probe_per_scale.cpu().numpy()
    by_member = fused.member_scores.float().cpu().numpy() if fused.member_scores is not None else None
    candidates = []
    for rank, (identity, i) in enumerate(ranked[:top_k], start=1):
        entry = entries[i]
        similarity = {s: fused.similarity[s][i].float().cpu().numpy() for s in scales}
        variants = []
        for k, s in enumerate(scales):
            row = int(best_rows[i, k])
            order = np.argsort(-similarity[s][row], kind="stable")[:NUM_GALLERY_VARIANTS_SHOWN]
            variants.extend((float(similarity[s][row, c]), s, int(c)) for c in order)
        variants.sort(key=lambda v: -v[0])
        shown = tuple(GalleryHypothesis(scale=s, path=labels[c], score=score, target_px=targets[s])
                      for score, s, c in variants[:NUM_GALLERY_VARIANTS_SHOWN])
        candidates.append(Candidate(
            rank=rank, identity=identity, image_path=entry.image_path, gallery_sha256=entry.sha256,
            score=float(scores[i]),
            per_scale_scores={s: float(per_scale[i, k]) for k, s in enumerate(scales)},
            best_probe_hypothesis=best_probe_hypothesis(int(fused.best_probe_scale[i]),
                                                        int(fused.best_probe_index[i])),
            best_gallery_hypotheses=shown,
            similarity=similarity,
            gallery_paths={s: labels for s in scales},
            member_scores=({name: float(by_member[i, m]) for m, name in enumerate(member_names)}
                           if by_member is not None else {}),
        ))
    return tuple(candidates)
