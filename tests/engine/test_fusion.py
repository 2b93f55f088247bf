"""Similarity (eq. 3) and fusion arithmetic (eq. 4-5, Figure 4, Tables 2-3) on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forensic_face.engine.errors import ConfigError, ShapeError
from forensic_face.engine.fusion import (
    FusionSpec,
    correlation_similarity,
    fuse_scores,
    score_fuse,
    template_add,
    template_concat,
    valid_fusions,
)

# Zero-mean orthonormal basis of the plane x + y + z = 0 in R^3. A template at angle a is
# cos(a) e1 + sin(a) e2 + OFFSET: the offset is removed by eq. (3)'s centring, so r(a, b) = cos(a - b), and
# sums of templates are sums of plane vectors (the summed offset is again constant and removed).
E1 = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64) / math.sqrt(2)
E2 = torch.tensor([1.0, 1.0, -2.0], dtype=torch.float64) / math.sqrt(6)
OFFSET = 0.3


def t(*degrees: float, offset: float = OFFSET) -> torch.Tensor:
    rows = [math.cos(math.radians(d)) * E1 + math.sin(math.radians(d)) * E2 + offset for d in degrees]
    return torch.stack(rows).float()


def cosd(d: float) -> float:
    return math.cos(math.radians(d))


# Single scale (2): probe hypotheses at 0 and 120 degrees; identity A has gallery hypotheses at 60 and 180,
# identity B at 0 and 240. Similarity matrices (rows: probe hypotheses, columns: gallery hypotheses):
#   A: [[cos 60, cos 180], [cos 60, cos 60]]   = [[0.5, -1.0], [ 0.5,  0.5]]
#   B: [[cos 0,  cos 240], [cos 120, cos 120]] = [[1.0, -0.5], [-0.5, -0.5]]
PROBE_1 = {2: t(0, 120)}
GALLERY_1 = {2: torch.stack([t(60, 180), t(0, 240)])}
SINGLE_SCALE_EXPECTED = {
    # row max then sum: A 0.5 + 0.5, B 1.0 - 0.5
    "S_max,S_add": [1.0, 0.5],
    "S_max,S_max": [0.5, 1.0],
    # row sums A [-0.5, 1.0], B [0.5, -1.0]
    "S_add,S_add": [0.5, -0.5],
    "S_add,S_max": [1.0, 0.5],
    # probe sum: unit vector at 60; A sum at 120 -> cos 60; B sum at 300 -> cos 240
    "T_add": [0.5, -0.5],
    "T_concat": [0.5, -0.5],
    # probe sum at 60 against A {60, 180} = {1, -0.5}; against B {0, 240} = {0.5, -1}
    "T_add_probe,S_max": [1.0, 0.5],
    "T_add_probe,S_add": [0.5, -0.5],
    # gallery sums A at 120, B at 300 against probes {0, 120}: A {-0.5, 1}, B {0.5, -1}
    "T_add_gallery,S_max": [1.0, 0.5],
    "T_add_gallery,S_add": [0.5, -0.5],
}

# Two scales: scale 2 as above; scale 4 has one probe hypothesis at 90; A's gallery at {30, 150} (sum: unit
# vector at 90), B's at {210, 330} (sum at 270). Scale-4 matrices: A [[0.5, 0.5]], B [[-0.5, -0.5]].
# No offset here: T_concat centres the concatenation as a whole, so per-scale sums of different numbers of
# offset templates would leave a step between the blocks (the random reference test covers that case).
PROBE_2 = {2: t(0, 120, offset=0.0), 4: t(90, offset=0.0)}
GALLERY_2 = {2: torch.stack([t(60, 180, offset=0.0), t(0, 240, offset=0.0)]),
             4: torch.stack([t(30, 150, offset=0.0), t(210, 330, offset=0.0)])}
MULTI_SCALE_EXPECTED = {
    # rows of both scales summed: A 0.5 + 0.5 + 0.5, B 1.0 - 0.5 - 0.5
    "S_max,S_add": [1.5, 0.0],
    "S_max,S_max": [0.5, 1.0],
    # row sums: A -0.5 + 1.0 + 1.0, B 0.5 - 1.0 - 1.0
    "S_add,S_add": [1.5, -1.5],
    "S_add,S_max": [1.0, 0.5],
    # probe: unit(60) + unit(90) points at 75; A: unit(120) + unit(90) at 105; B: unit(300) + unit(270) at 285
    "T_add": [cosd(30), cosd(210)],
    # concatenation [unit(60); unit(90)] vs A [unit(120); unit(90)]: (cos 60 + cos 0) / (sqrt 2 * sqrt 2)
    "T_concat": [0.75, -0.75],
    # probe sum at 75 against A {60, 180, 30, 150} and B {0, 240, 210, 330}
    "T_add_probe,S_max": [cosd(15), cosd(75)],
    "T_add_probe,S_add": [cosd(15) + cosd(105) + cosd(45) + cosd(75),
                          cosd(75) + cosd(165) + cosd(135) + cosd(105)],
    # gallery sum A at 105, B at 285 against probes {0, 120, 90}
    "T_add_gallery,S_max": [cosd(15), cosd(75)],
    "T_add_gallery,S_add": [cosd(105) + cosd(15) + cosd(15), cosd(285) + cosd(165) + cosd(195)],
}
PER_SCALE_EXPECTED = {
    "S_max,S_add": [[1.0, 0.5], [0.5, -0.5]],
    "S_add,S_add": [[0.5, 1.0], [-0.5, -1.0]],
    "T_add": [[0.5, 1.0], [-0.5, -1.0]],
}


def test_correlation_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 10)) + 3.0
    b = rng.normal(size=(3, 10)) * 5.0 - 1.0
    expected = np.corrcoef(np.vstack([a, b]))[:4, 4:]
    got = correlation_similarity(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_correlation_batched_form() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 4, 16, generator=gen)
    b = torch.randn(5, 3, 16, generator=gen)
    got = correlation_similarity(a, b)
    assert got.shape == (5, 4, 3)
    for i in range(5):
        assert torch.allclose(got[i], correlation_similarity(a[i], b[i]), atol=1e-6)
    # Broadcast: one probe set against a batch of galleries.
    assert torch.allclose(correlation_similarity(a[0], b), torch.stack([correlation_similarity(a[0], g) for g in b]))
    # Invariant to offset and positive scale of either template, sign flips with negation.
    assert torch.allclose(correlation_similarity(3 * a[0] + 7, b[0]), got[0], atol=1e-5)
    assert torch.allclose(correlation_similarity(-a[0], b[0]), -got[0], atol=1e-6)
    with pytest.raises(ShapeError):
        correlation_similarity(a, torch.randn(3, 8))


def test_correlation_hand_values() -> None:
    got = correlation_similarity(torch.tensor([[1.0, 2.0, 3.0]]),
                                 torch.tensor([[3.0, 2.0, 1.0], [1.0, 0.0, 1.0], [10.0, 20.0, 30.0]]))
    assert torch.allclose(got, torch.tensor([[-1.0, 0.0, 1.0]]), atol=1e-6)


def test_template_and_score_primitives() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert torch.equal(template_add(x), torch.tensor([[4.0, 6.0]]))
    y = torch.tensor([[[10.0, 20.0]]])
    assert torch.equal(template_concat([x, y]), torch.tensor([[4.0, 6.0, 10.0, 20.0]]))
    s = torch.tensor([[0.5, -1.0, 0.25]])
    assert torch.equal(score_fuse(s, "max"), torch.tensor([0.5]))
    assert torch.equal(score_fuse(s, "add"), torch.tensor([-0.25]))
    with pytest.raises(ConfigError):
        score_fuse(s, "min")  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", list(SINGLE_SCALE_EXPECTED))
def test_single_scale_hand_examples(spec: str) -> None:
    fused = fuse_scores(PROBE_1, GALLERY_1, spec)
    assert torch.allclose(fused.scores, torch.tensor(SINGLE_SCALE_EXPECTED[spec]), atol=1e-5), fused.scores
    assert torch.allclose(fused.per_scale_scores[:, 0], fused.scores, atol=1e-6)
    assert torch.allclose(fused.similarity[2], torch.tensor([[[0.5, -1.0], [0.5, 0.5]],
                                                             [[1.0, -0.5], [-0.5, -0.5]]]), atol=1e-5)


@pytest.mark.parametrize("spec", list(MULTI_SCALE_EXPECTED))
def test_multi_scale_hand_examples(spec: str) -> None:
    fused = fuse_scores(PROBE_2, GALLERY_2, spec)
    assert fused.scales == (2, 4)
    assert fused.scores.shape == (2,) and fused.per_scale_scores.shape == (2, 2)
    assert torch.allclose(fused.scores, torch.tensor(MULTI_SCALE_EXPECTED[spec]), atol=1e-5), fused.scores
    if spec in PER_SCALE_EXPECTED:
        assert torch.allclose(fused.per_scale_scores, torch.tensor(PER_SCALE_EXPECTED[spec]), atol=1e-5)
    assert fused.similarity[4].shape == (2, 1, 2)


def test_aliases_and_parsing() -> None:
    assert FusionSpec.parse("S_max").name == "S_max,S_max"
    assert FusionSpec.parse("S_add").name == "S_add,S_add"
    assert FusionSpec.parse("T_add_probe,T_add").name == "T_add"
    assert FusionSpec.parse(" s_max , S_ADD ") == FusionSpec.parse("S_max,S_add")
    spec = FusionSpec.parse("T_add_gallery,S_add")
    assert (spec.probe_template, spec.gallery_template, spec.column) == ("none", "add", "add")
    for text in valid_fusions():
        FusionSpec.parse(text)
    with pytest.raises(AttributeError):
        spec.row = "add"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["", "S_min,S_add", "S_max;S_add", "T_concat_probe,S_max", "S_max,S_add,S_add",
                                 "T_add_probe", "max"])
def test_invalid_fusion_strings(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        FusionSpec.parse(bad)
    assert "S_max,S_add" in str(info.value) and "T_add_gallery,S_max" in str(info.value)
    with pytest.raises(ConfigError):
        fuse_scores(PROBE_1, GALLERY_1, bad)


def _reference(probe: dict[int, torch.Tensor], gallery: dict[int, torch.Tensor], spec: str) -> list[float]:
    """A loop-per-identity numpy reimplementation of the paper's definitions."""

    def r(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.corrcoef(x, y)[0, 1])

    def fuse(values: list[float], mode: str) -> float:
        return max(values) if mode == "max" else sum(values)

    scales = sorted(probe)
    out = []
    for b in range(next(iter(gallery.values())).shape[0]):
        p = {s: probe[s].double().numpy() for s in scales}
        g = {s: gallery[s][b].double().numpy() for s in scales}
        if spec.startswith("S_"):
            first, second = spec.replace("S_", "").split(",")
            rows = [fuse([r(pi, gj) for gj in g[s]], first) for s in scales for pi in p[s]]
            out.append(fuse(rows, second))
        elif spec == "T_add":
            out.append(r(sum(p[s].sum(0) for s in scales), sum(g[s].sum(0) for s in scales)))
        elif spec == "T_concat":
            out.append(r(np.concatenate([p[s].sum(0) for s in scales]), np.concatenate([g[s].sum(0) for s in scales])))
        elif spec.startswith("T_add_probe"):
            tp = sum(p[s].sum(0) for s in scales)
            out.append(fuse([r(tp, gj) for s in scales for gj in g[s]], spec.split("S_")[1]))
        else:
            tg = sum(g[s].sum(0) for s in scales)
            out.append(fuse([r(pi, tg) for s in scales for pi in p[s]], spec.split("S_")[1]))
    return out


@pytest.mark.parametrize("spec", list(MULTI_SCALE_EXPECTED))
def test_random_templates_match_reference(spec: str) -> None:
    gen = torch.Generator().manual_seed(1)
    probe = {2: torch.randn(3, 32, generator=gen), 4: torch.randn(2, 32, generator=gen),
             8: torch.randn(4, 32, generator=gen)}
    gallery = {2: torch.randn(6, 5, 32, generator=gen), 4: torch.randn(6, 7, 32, generator=gen),
               8: torch.randn(6, 5, 32, generator=gen)}
    fused = fuse_scores(probe, gallery, spec)
    np.testing.assert_allclose(fused.scores.numpy(), _reference(probe, gallery, spec), atol=2e-5)
    # Batched over identities: scoring one identity alone gives its row of the batch.
    alone = fuse_scores(probe, {s: g[3:4] for s, g in gallery.items()}, spec)
    assert torch.allclose(alone.scores, fused.scores[3:4], atol=1e-6)
    assert torch.allclose(alone.per_scale_scores, fused.per_scale_scores[3:4], atol=1e-6)


def test_diagnostics_point_at_best_hypotheses() -> None:
    gen = torch.Generator().manual_seed(2)
    probe = {2: torch.randn(3, 16, generator=gen), 4: torch.randn(4, 16, generator=gen)}
    gallery = {2: torch.randn(5, 6, 16, generator=gen), 4: torch.randn(5, 2, 16, generator=gen)}
    fused = fuse_scores(probe, gallery, "S_max,S_add")
    for b in range(5):
        best = max(((s, i, float(fused.similarity[s][b, i].max())) for s in (2, 4) for i in range(probe[s].shape[0])),
                   key=lambda item: item[2])
        assert (int(fused.best_probe_scale[b]), int(fused.best_probe_index[b])) == best[:2]
        for k, s in enumerate((2, 4)):
            sim = fused.similarity[s][b]
            row = int(sim.max(dim=1).values.argmax())
            assert int(fused.best_probe_per_scale[b, k]) == row
            assert int(fused.best_gallery_per_scale[b, k]) == int(sim[row].argmax())
            assert torch.allclose(fused.row_scores[s][b], sim.max(dim=1).values)
    # S_x,S_add per-scale scores add up to the total.
    assert torch.allclose(fused.per_scale_scores.sum(dim=1), fused.scores, atol=1e-5)
    # Per-scale axes follow the probe dict's key order, whatever it is.
    flipped = fuse_scores({4: probe[4], 2: probe[2]}, gallery, "S_max,S_add")
    assert flipped.scales == (4, 2)
    assert torch.allclose(flipped.per_scale_scores, fused.per_scale_scores.flip(1))
    assert torch.equal(flipped.best_gallery_per_scale, fused.best_gallery_per_scale.flip(1))
    assert torch.allclose(flipped.scores, fused.scores, atol=1e-6)


def test_shape_checks() -> None:
    with pytest.raises(ShapeError, match="scales"):
        fuse_scores({2: t(0)}, {4: torch.stack([t(0)])})
    with pytest.raises(ShapeError, match="dimension"):
        fuse_scores({2: torch.randn(2, 8)}, {2: torch.randn(3, 2, 9)})
    with pytest.raises(ShapeError, match="identities"):
        fuse_scores({2: torch.randn(2, 8), 4: torch.randn(2, 8)}, {2: torch.randn(3, 2, 8), 4: torch.randn(2, 2, 8)})
    with pytest.raises(ShapeError):
        fuse_scores({2: torch.randn(8)}, {2: torch.randn(3, 2, 8)})
    with pytest.raises(ShapeError):
        fuse_scores({}, {})


def test_add_as_mean_ranks_like_the_sum_and_stays_on_the_correlation_scale() -> None:
    gen = torch.Generator().manual_seed(3)
    probe = {2: torch.randn(4, 8, generator=gen), 4: torch.randn(6, 8, generator=gen)}
    gallery = {2: torch.randn(5, 3, 8, generator=gen), 4: torch.randn(5, 3, 8, generator=gen)}
    summed = fuse_scores(probe, gallery, "S_max,S_add")
    mean = fuse_scores(probe, gallery, "S_max,S_add", add_as_mean=True)
    torch.testing.assert_close(mean.scores, summed.scores / 10)  # 4 + 6 probe hypotheses
    assert torch.equal(mean.scores.argsort(), summed.scores.argsort())
    torch.testing.assert_close(mean.per_scale_scores, summed.per_scale_scores / torch.tensor([4.0, 6.0]))
    assert float(mean.scores.abs().max()) <= 1.0
