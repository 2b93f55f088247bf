"""Similarity and multi-scale fusion (paper section 3.4, eq. 3-5, Figure 4, Tables 2-3).

Notation (paper): for each scale s there are ``m_s`` probe hypotheses (super-resolved at that scale) and, per
gallery identity, ``n_s`` gallery hypotheses (degraded and resolution-matched to that scale). Probe templates come
as ``{scale: (m_s, D)}``, gallery templates for ``B`` identities as ``{scale: (B, n_s, D)}``; every function here
is batched over the ``B`` identities.

A :class:`FusionSpec` names one cell of Figure 4 / Tables 2-3:

* two score fusions ``"S_a,S_b"`` (Figure 4c): per scale, the ``m_s x n_s`` correlation matrix is reduced
  row-wise with ``S_a`` (over the gallery hypotheses of that scale), then the row scores of *all* scales are
  reduced with ``S_b`` (over every probe hypothesis). Probe and gallery hypotheses are only compared within a
  scale, because a gallery hypothesis is resolution-matched to one probe scale. ``"S_max,S_add"`` is the
  paper's best (93.53 % on SCFace d1); the engine's default is :attr:`EngineConfig.fusion` (measured on
  LFW-XRes with our recognizer, see docs/results.md).
* template fusion on both sides (Figure 4a): ``"T_add"`` sums every template of every scale (eq. 4) on each
  side, ``"T_concat"`` sums per scale and concatenates over scales (eq. 5); then one correlation.
* template addition on one side (Figure 4b, Table 3): ``"T_add_probe,S_x"`` sums all probe templates into one
  and fuses its correlations with every gallery hypothesis (all scales) by ``S_x``; ``"T_add_gallery,S_x"``
  sums all gallery templates and fuses over every probe hypothesis.

``S_add`` is the plain sum, as in the paper; with equal hypothesis counts for every identity it ranks the same
as the mean.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from forensic_face.engine.config import ENSEMBLE_RULES
from forensic_face.engine.errors import ConfigError, ShapeError

log = logging.getLogger(__name__)

#: How fused scores are expressed; part of every provenance record, benchmark cache key and calibration, so
#: scores made under another convention are never mixed with these. "mean": S_add reported as a mean.
SCORE_SCALE = "mean-v1"

TemplateMode = Literal["none", "add", "concat"]
ScoreMode = Literal["max", "add"]


def correlation_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Eq. (3): Pearson correlation between every template of ``a`` and every template of ``b``.

    Each template is centred by the mean of its own D elements, then the cosine is taken. ``a`` is
    ``(..., P, D)`` and ``b`` ``(..., G, D)`` with broadcastable leading axes; the result is ``(..., P, G)`` in
    [-1, 1], computed in float32 as one matrix product. A constant template (zero variance) scores 0.

    >>> correlation_similarity(torch.randn(4, 8), torch.randn(2, 5, 8)).shape
    torch.Size([2, 4, 5])
    """
    if a.dim() < 2 or b.dim() < 2:
        raise ShapeError(f"templates must be (..., K, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-1]:
        raise ShapeError(f"template dimensions differ: {a.shape[-1]} vs {b.shape[-1]}")
    a_c = _centre_normalise(a.float(), eps)
    b_c = _centre_normalise(b.float(), eps)
    return torch.matmul(a_c, b_c.transpose(-1, -2)).clamp(-1.0, 1.0)


def _centre_normalise(x: torch.Tensor, eps: float) -> torch.Tensor:
    centred = x - x.mean(dim=-1, keepdim=True)
    return torch.div(centred, centred.norm(dim=-1, keepdim=True).clamp_min(eps))


def template_add(templates: torch.Tensor) -> torch.Tensor:
    """Eq. (4): element-wise sum of the hypotheses ``(..., K, D) -> (..., D)``."""
    return templates.sum(dim=-2)


def template_mean(templates: torch.Tensor, weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Weighted mean ``(V, ..., D) -> (..., D)`` of several views' templates of one face (frames of a video
    track), each first centred and normalised as :func:`correlation_similarity` sees it, so no view counts
    more for a larger template norm; ``weights`` ``(V,)`` (e.g. face quality) need not sum to 1.

    >>> template_mean(torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]), torch.tensor([1.0, 3.0]))
    tensor([ 0.7071,  0.0000, -0.7071])
    """
    if weights.dim() != 1 or weights.shape[0] != templates.shape[0]:
        raise ShapeError(f"weights {tuple(weights.shape)} do not match {templates.shape[0]} views")
    w = weights.to(templates.device, torch.float32).clamp_min(0.0)
    w = torch.ones_like(w) if float(w.sum()) <= 0 else w
    normalised = _centre_normalise(templates.float(), eps)
    return torch.tensordot(w / w.sum(), normalised, dims=([0], [0]))


def template_concat(per_scale: list[torch.Tensor]) -> torch.Tensor:
    """Eq. (5): :func:`template_add` per scale, then concatenation over scales, ``[(..., K_s, D)] -> (..., D*|s|)``."""
    if not per_scale:
        raise ShapeError("template_concat needs at least one scale")
    return torch.cat([template_add(t) for t in per_scale], dim=-1)


def score_fuse(scores: torch.Tensor, mode: ScoreMode, dim: int = -1, add_as_mean: bool = False) -> torch.Tensor:
    """``S_max`` (maximum) or ``S_add`` (sum, or mean with ``add_as_mean``) along ``dim``.

    The mean ranks exactly like the paper's sum within one search, but stays on the correlation's [-1, 1]
    scale whatever the number of hypotheses, so scores of different probes can be compared and calibrated.
    """
    if mode == "max":
        return scores.max(dim=dim).values
    if mode == "add":
        return scores.mean(dim=dim) if add_as_mean else scores.sum(dim=dim)
    raise ConfigError(f"unknown score fusion {mode!r}; expected 'max' or 'add'")


@dataclass(frozen=True)
class FusionSpec:
    """One fusion strategy of Figure 4. Build it with :meth:`parse`.

    ``probe_template`` / ``gallery_template``: template fusion applied to that side first (``none``, ``add`` over
    every hypothesis of every scale, or ``concat`` = per-scale add then concatenation). ``row``: score fusion over
    gallery hypotheses for each probe hypothesis. ``column``: score fusion over the probe hypotheses of all
    scales. Where a side was fused into one template, the corresponding reduction is over one value.
    """

    name: str
    probe_template: TemplateMode
    gallery_template: TemplateMode
    row: ScoreMode
    column: ScoreMode

    @classmethod
    def parse(cls, text: str) -> FusionSpec:
        """Parse e.g. ``"S_max,S_add"`` (case and spaces ignored); unknown strings raise :class:`ConfigError`."""
        key = "".join(str(text).split()).lower()
        canonical = {c.lower(): c for c in _SPECS}
        alias = {a.lower(): c for a, c in _ALIASES.items()}
        name = canonical.get(key) or alias.get(key)
        if name is None:
            raise ConfigError(f"unknown fusion {text!r}; valid: {' | '.join(valid_fusions())}")
        probe_t, gallery_t, row, column = _SPECS[name]
        return cls(name, probe_t, gallery_t, row, column)

    @property
    def is_score_fusion(self) -> bool:
        return self.probe_template == "none" and self.gallery_template == "none"


_SPECS: dict[str, tuple[TemplateMode, TemplateMode, ScoreMode, ScoreMode]] = {
    # Figure 4(c): row-wise score fusion, then fusion of the row scores.
    "S_max,S_add": ("none", "none", "max", "add"),
    "S_max,S_max": ("none", "none", "max", "max"),
    "S_add,S_add": ("none", "none", "add", "add"),
    "S_add,S_max": ("none", "none", "add", "max"),
    # Figure 4(a): template fusion on both sides.
    "T_add": ("add", "add", "max", "max"),
    "T_concat": ("concat", "concat", "max", "max"),
    # Figure 4(b), Table 3: template addition on one side, score fusion over the other side's hypotheses.
    "T_add_probe,S_max": ("add", "none", "max", "max"),
    "T_add_probe,S_add": ("add", "none", "add", "max"),
    "T_add_gallery,S_max": ("none", "add", "max", "max"),
    "T_add_gallery,S_add": ("none", "add", "max", "add"),
}
#: Table 2's single-word columns and Table 3's "T_add" cells are the same computations as these.
_ALIASES = {
    "S_max": "S_max,S_max",
    "S_add": "S_add,S_add",
    "T_add_probe,T_add": "T_add",
    "T_add_gallery,T_add": "T_add",
    "T_add,T_add": "T_add",
    "T_concat,T_concat": "T_concat",
}
#: The paper's best fusion (the default of :func:`fuse_scores` when called without a spec; the engine always
#: passes its configured one).
PAPER_FUSION = "S_max,S_add"


def canonical_fusions() -> list[str]:
    """One name per fusion (no aliases), in the order of the paper's Figure 4 / Table 3."""
    return list(_SPECS)


def valid_fusions() -> list[str]:
    """Every accepted fusion string: the canonical ones first, then aliases."""
    return canonical_fusions() + list(_ALIASES)


@dataclass(frozen=True)
class FusedScores:
    """Scores of one probe against ``B`` gallery identities.

    * ``scores`` ``(B,)``: the fused similarity of the spec (higher is more similar).
    * ``scales``: the scales in the key order of the probe-template dict; every ``|s|`` axis follows it.
    * ``per_scale_scores`` ``(B, |s|)``: the same spec applied to the templates of one scale alone. For ``S_x,S_add`` they sum to ``scores``; for ``S_x,S_max`` their max is ``scores``.
    * ``similarity[s]`` ``(B, m_s, n_s)``: raw eq. (3) correlations of the probe and gallery hypotheses of scale
      ``s`` (for heatmaps), whatever the spec.
    * ``row_scores[s]`` ``(B, m_s)``: each probe hypothesis' score, ``similarity[s]`` fused over its row with
      ``spec.row``.
    * ``best_probe_scale`` / ``best_probe_index`` ``(B,)``: scale value and row of the probe hypothesis with
      the highest row score over all scales. ``best_probe_per_scale`` ``(B, |s|)``: the best row per scale.
    * ``best_gallery_per_scale`` ``(B, |s|)``: per scale, the gallery hypothesis (column) most similar to that
      scale's best probe hypothesis.
    """

    spec: FusionSpec
    scales: tuple[int, ...]
    scores: torch.Tensor
    per_scale_scores: torch.Tensor
    similarity: dict[int, torch.Tensor]
    row_scores: dict[int, torch.Tensor]
    best_probe_scale: torch.Tensor
    best_probe_index: torch.Tensor
    best_probe_per_scale: torch.Tensor
    best_gallery_per_scale: torch.Tensor
    #: ``(B, M)``: each member's own fused score, for a recognizer ensemble (``None`` for one network)
    member_scores: torch.Tensor | None = None


def _check_templates(probe: Mapping[int, torch.Tensor],
                     gallery: Mapping[int, torch.Tensor]) -> tuple[tuple[int, ...], int]:
    if not probe:
        raise ShapeError("no probe templates: need at least one scale")
    if set(probe) != set(gallery):
        raise ShapeError(f"probe scales {sorted(probe)} differ from gallery scales {sorted(gallery)}")
    scales = tuple(probe)
    dims = {int(probe[s].shape[-1]) for s in scales} | {int(gallery[s].shape[-1]) for s in scales}
    for s in scales:
        if probe[s].dim() != 2 or probe[s].shape[0] < 1:
            raise ShapeError(f"probe templates at scale {s} must be (m, D) with m >= 1, got {tuple(probe[s].shape)}")
        if gallery[s].dim() != 3 or gallery[s].shape[1] < 1:
            raise ShapeError(
                f"gallery templates at scale {s} must be (B, n, D) with n >= 1, got {tuple(gallery[s].shape)}")
    if len(dims) != 1:
        raise ShapeError(f"all templates must have the same dimension, got {sorted(dims)}")
    identities = {int(gallery[s].shape[0]) for s in scales}
    if len(identities) != 1:
        raise ShapeError(f"gallery templates disagree on the number of identities across scales: {identities}")
    return scales, identities.pop()


def _fused_score(spec: FusionSpec, probe: list[torch.Tensor], gallery: list[torch.Tensor],
                 sims: list[torch.Tensor], add_as_mean: bool = False) -> torch.Tensor:
    """The spec's score ``(B,)`` for the given scales (``probe[i]`` ``(m, D)``, ``gallery[i]`` ``(B, n, D)``)."""
    if spec.is_score_fusion:
        rows = torch.cat([score_fuse(sim, spec.row, add_as_mean=add_as_mean) for sim in sims], dim=1)
        return score_fuse(rows, spec.column, add_as_mean=add_as_mean)
    if spec.probe_template == "concat":
        t_p = template_concat(probe)
        t_g = template_concat(gallery)
        return correlation_similarity(t_p.unsqueeze(0).unsqueeze(1), t_g.unsqueeze(1))[:, 0, 0]
    if spec.probe_template == "add" and spec.gallery_template == "add":
        t_p = torch.stack([template_add(p.float()) for p in probe]).sum(dim=0)
        t_g = torch.stack([template_add(g.float()) for g in gallery]).sum(dim=0)
        return correlation_similarity(t_p.unsqueeze(0).unsqueeze(1), t_g.unsqueeze(1))[:, 0, 0]
    if spec.probe_template == "add":
        t_p = torch.stack([template_add(p.float()) for p in probe]).sum(dim=0)
        g_all = torch.cat(gallery, dim=1)
        return score_fuse(correlation_similarity(t_p.unsqueeze(0), g_all)[:, 0, :], spec.row, add_as_mean=add_as_mean)
    # Template addition on the gallery side only.
    t_g = torch.stack([template_add(g.float()) for g in gallery]).sum(dim=0)
    p_all = torch.cat(probe, dim=0)
    return score_fuse(correlation_similarity(p_all, t_g.unsqueeze(1))[:, :, 0], spec.column, add_as_mean=add_as_mean)


def member_spans(blocks: Sequence[int] | None, dim: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of each member's block of a ``dim``-wide template (one block without ``blocks``)."""
    if not blocks:
        return [(0, dim)]
    if any(int(b) < 1 for b in blocks) or sum(int(b) for b in blocks) != dim:
        raise ShapeError(f"member blocks {list(blocks)} do not tile templates of dimension {dim}")
    stops = torch.tensor([int(b) for b in blocks]).cumsum(0).tolist()
    return list(zip([0] + stops[:-1], stops))


def combine_member_scores(scores: torch.Tensor, weights: torch.Tensor, rule: str, eps: float = 1e-6
                          ) -> torch.Tensor:
    """The members' scores ``(M, B, ...)`` of one probe against ``B`` identities combined into ``(B, ...)``.

    ``mean``: the weighted mean; scores stay correlations in [-1, 1] and do not depend on the rest of the gallery
    (what a likelihood-ratio calibration needs). ``znorm``: each member's scores standardised over the ``B``
    identities of this search first (mean 0, standard deviation 1), then the weighted mean; it evens out members
    whose score spreads differ, but a score then depends on who else is in the gallery.
    """
    if rule not in ENSEMBLE_RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; expected one of {', '.join(ENSEMBLE_RULES)}")
    if weights.shape != scores.shape[:1]:
        raise ShapeError(f"{weights.numel()} member weights for {scores.shape[0]} members")
    if rule == "znorm":
        scores = (scores - scores.mean(dim=1, keepdim=True)) / scores.std(dim=1, keepdim=True).nan_to_num(0.0
                                                                                                     ).clamp_min(eps)
    w = weights.to(scores.device, scores.dtype)
    return torch.tensordot(w / w.sum(), scores, dims=([0], [0]))


def fuse_scores(
    probe_templates: Mapping[int, torch.Tensor],
    gallery_templates: Mapping[int, torch.Tensor],
    spec: FusionSpec | str = PAPER_FUSION,
    add_as_mean: bool = False,
    blocks: Sequence[int] | None = None,
    block_weights: Sequence[float] | None = None,
    rule: str = "mean",
) -> FusedScores:
    """Score one probe against ``B`` gallery identities (section 3.4), batched over identities.

    ``add_as_mean`` reports every ``S_add`` as a mean (same ranking as the paper's sum; see :func:`score_fuse`).

    ``probe_templates[s]`` is ``(m_s, D)``, ``gallery_templates[s]`` ``(B, n_s, D)``; both dicts must have the
    same scales. Per-scale outputs follow the key order of ``probe_templates`` (``FusedScores.scales``). See the module docstring for how each spec treats scales and :class:`FusedScores` for outputs.

    ``blocks``: the templates of a recognizer ensemble hold one block per member (their widths, in order). Each
    member's block is fused by ``spec`` alone, as a single network's templates would be, and the members' scores
    are combined by ``rule`` (:func:`combine_member_scores`) with ``block_weights`` (equal by default). The
    correlations behind the heatmaps and the best hypotheses are the members' weighted mean.
    """
    if isinstance(spec, str):
        spec = FusionSpec.parse(spec)
    scales, _ = _check_templates(probe_templates, gallery_templates)
    device = gallery_templates[scales[0]].device
    probe = [probe_templates[s].to(device=device, dtype=torch.float32) for s in scales]
    gallery = [gallery_templates[s].float() for s in scales]
    spans = member_spans(blocks, int(probe[0].shape[-1]))
    member_sims, member_scores, member_per_scale = [], [], []
    for start, stop in spans:
        p_m = [p[..., start:stop] for p in probe] if len(spans) > 1 else probe
        g_m = [g[..., start:stop] for g in gallery] if len(spans) > 1 else gallery
        sims_m = [correlation_similarity(p, g) for p, g in zip(p_m, g_m)]
        member_sims.append(sims_m)
        member_scores.append(_fused_score(spec, p_m, g_m, sims_m, add_as_mean))
        member_per_scale.append(torch.stack([_fused_score(spec, [p], [g], [sim], add_as_mean)
                                             for p, g, sim in zip(p_m, g_m, sims_m)], dim=1))
    if len(spans) == 1:
        sims, scores, per_scale, by_member = member_sims[0], member_scores[0], member_per_scale[0], None
    else:
        weights = torch.tensor([1.0] * len(spans) if not block_weights else [float(x) for x in block_weights],
                               device=device)
        if weights.numel() != len(spans) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ConfigError(f"ensemble weights {list(block_weights or [])} must be {len(spans)} non-negative "
                              "numbers, not all zero")
        by_member = torch.stack(member_scores, dim=1)
        scores = combine_member_scores(by_member.T, weights, rule)
        per_scale = combine_member_scores(torch.stack(member_per_scale), weights, rule)
        w = weights / weights.sum()
        sims = [torch.tensordot(w, torch.stack([m_sims[i] for m_sims in member_sims]), dims=([0], [0]))
                for i in range(len(scales))]

    row_scores = [score_fuse(sim, spec.row) for sim in sims]
    best_rows = torch.stack([r.argmax(dim=1) for r in row_scores], dim=1)
    best_cols = torch.stack(
        [sim.gather(1, best_rows[:, i, None, None].expand(-1, 1, sim.shape[2]))[:, 0, :].argmax(dim=1)
         for i, sim in enumerate(sims)], dim=1)
    all_rows = torch.cat(row_scores, dim=1)
    flat_best = all_rows.argmax(dim=1)
    offsets = torch.tensor([0] + [p.shape[0] for p in probe], device=device).cumsum(0)
    scale_pos = torch.searchsorted(offsets[1:], flat_best, right=True)
    scale_values = torch.tensor(scales, device=device)
    return FusedScores(
        spec=spec,
        scales=scales,
        scores=scores,
        per_scale_scores=per_scale,
        similarity=dict(zip(scales, sims)),
        row_scores=dict(zip(scales, row_scores)),
        best_probe_scale=scale_values[scale_pos],
        best_probe_index=flat_best - offsets[scale_pos],
        best_probe_per_scale=best_rows,
        best_gallery_per_scale=best_cols,
        member_scores=by_member,
    )
