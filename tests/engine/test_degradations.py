"""Gallery degradation bank: Table 1 functions, eq. (1) chains, budgets, tree reuse and per-image seeding."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from forensic_face.engine import degradations as D
from forensic_face.engine.degradations import bank
from forensic_face.engine.errors import Cancelled, ConfigError, ShapeError

NAMES = [
    "gauss_noise", "speckle", "color_jitter", "brightness", "motion_blur", "gauss_blur", "disk_blur",
    "perspective", "shear", "rescale", "patch_shuffle",
]
RANDOM_NAMES = ["gauss_noise", "speckle", "color_jitter", "brightness", "perspective", "shear", "rescale",
                "patch_shuffle"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    # Smooth colourful content plus texture, strictly inside (0, 1).
    g = _gen(seed)
    base = torch.rand(n, 3, h // 4, w // 4, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    texture = torch.rand(n, 3, h, w, generator=g)
    return (0.1 + 0.6 * smooth + 0.2 * texture).clamp(0.0, 1.0)


def _impulse(size: int = 31) -> torch.Tensor:
    x = torch.zeros(1, 3, size, size)
    x[:, :, size // 2, size // 2] = 1.0
    return x


# ------------------------------------------------------------------------------------------ registry


def test_registry_has_table1_names_in_order() -> None:
    assert D.available_degradations() == NAMES
    assert D.DEGRADATION_NAMES == tuple(NAMES)
    with pytest.raises(ConfigError, match="unknown degradation"):
        D.get_degradation("blur")
    with pytest.raises(ConfigError, match="already registered"):
        D.register_degradation(D.get_degradation("shear"))
    record = D.settings_record()
    assert record["names"] == NAMES and record["noise_variance"] == 0.02 and record["disk_blur_radius_px"] == 5


def test_down2_halves_with_antialiasing() -> None:
    x = _images(n=2, h=33, w=20).double()
    y = D.down2(x)
    assert y.shape == (2, 3, 16, 10) and y.dtype == torch.float64
    checker = ((torch.arange(32).view(32, 1) + torch.arange(32).view(1, 32)) % 2).float().expand(1, 3, 32, 32)
    assert float((D.down2(checker) - 0.5).abs().max()) < 0.1, "bicubic without antialiasing would alias"


# ------------------------------------------------------------------------------------------ each function


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_range(name: str, dtype: torch.dtype) -> None:
    x = _images(h=25, w=22).to(dtype)
    deg = D.get_degradation(name)
    params = deg.sample(x.shape[0], _gen(1), x.shape[-2], x.shape[-1])
    for value in params.values():
        assert value.shape[0] == x.shape[0]
        assert value.device.type == "cpu"
    y = deg.apply(x, params)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x), f"{name} left the image unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_seeded_determinism(name: str) -> None:
    x = _images(n=8)  # enough images that two seeds cannot draw the same discrete rescale factors by chance
    deg = D.get_degradation(name)
    a = deg(x, _gen(7))
    b = deg(x, _gen(7))
    assert torch.equal(a, b)
    if name in RANDOM_NAMES:
        assert not torch.equal(a, deg(x, _gen(8)))


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_params_vary_per_image(name: str) -> None:
    params = D.get_degradation(name).sample(6, _gen(3), 16, 16)
    varying = [k for k, v in params.items() if not all(torch.equal(v[0], v[i]) for i in range(1, 6))]
    assert varying, f"{name}: every image got the same parameters"


def test_global_rng_is_not_used() -> None:
    x = _images()
    torch.manual_seed(0)
    a = [D.get_degradation(n)(x, _gen(5)) for n in RANDOM_NAMES]
    torch.manual_seed(123)
    b = [D.get_degradation(n)(x, _gen(5)) for n in RANDOM_NAMES]
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_gauss_noise_variance_on_flat_grey() -> None:
    x = torch.full((2, 3, 128, 128), 0.5)
    y = D.get_degradation("gauss_noise")(x, _gen(0))
    # 98,304 samples: the variance estimate is within about 1 % of 0.02; clipping at 0.5 +/- 3.5 sigma is negligible.
    assert float(y.var()) == pytest.approx(0.02, rel=0.03)
    assert float(y.mean()) == pytest.approx(0.5, abs=0.002)


def test_speckle_is_multiplicative_with_variance_002() -> None:
    deg = D.get_degradation("speckle")
    grey = deg(torch.full((2, 3, 128, 128), 0.5), _gen(0))
    assert float(grey.var()) == pytest.approx(0.5**2 * 0.02, rel=0.03)
    black = deg(torch.zeros(1, 3, 16, 16), _gen(0))
    assert torch.equal(black, torch.zeros_like(black))


def test_motion_blur_is_horizontal_window_20() -> None:
    y = D.apply_motion_blur(_impulse(41), {})
    assert torch.count_nonzero(y[0, 0].sum(dim=1)) == 1, "energy left the impulse's row"
    row = y[0, 0, 20]
    assert int(torch.count_nonzero(row)) == 20
    assert torch.allclose(row[row > 0], torch.full((20,), 1 / 20))
    # Horizontal stripes (each row constant) pass unchanged; vertical stripes are averaged away.
    rows = torch.zeros(1, 3, 40, 40)
    rows[:, :, ::2] = 1.0
    assert torch.allclose(D.apply_motion_blur(rows, {}), rows, atol=1e-6)
    cols = rows.transpose(-1, -2)
    assert torch.allclose(D.apply_motion_blur(cols, {})[..., 12:28], torch.full((1, 3, 40, 16), 0.5), atol=1e-6)


def test_gauss_blur_impulse_response() -> None:
    y = D.apply_gauss_blur(_impulse(15), {})[0, 0]
    assert int(torch.count_nonzero(y)) == 25
    # Hand formula: w(d) = exp(-d^2 / (2 * 1.1^2)) normalised over the 5x5 window.
    one = [math.exp(-(d**2) / (2 * 1.21)) for d in (-2, -1, 0, 1, 2)]
    total = sum(one) ** 2
    assert float(y[7, 7]) == pytest.approx(1 / total, rel=1e-5)
    assert float(y[7, 9]) == pytest.approx(one[4] / total, rel=1e-5)
    assert float(y[5, 9]) == pytest.approx(one[4] ** 2 / total, rel=1e-5)
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-5)


def test_disk_blur_radius_5() -> None:
    y = D.apply_disk_blur(_impulse(31), {})[0, 0]
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-5)
    yy, xx = torch.meshgrid(torch.arange(31) - 15, torch.arange(31) - 15, indexing="ij")
    dist = (yy**2 + xx**2).float().sqrt()
    assert float(y[dist > 5.0 + math.sqrt(0.5)].abs().max()) == 0.0, "weight beyond the disk"
    inner = y[dist <= 5.0 - math.sqrt(0.5)]
    assert torch.allclose(inner, inner[0].expand_as(inner)), "pixels fully inside the disk must weigh the same"
    assert float(y[15, 15 + 5]) > 0 and float(y[15, 15 + 6]) == 0.0
    # Fully covered pixels weigh 1 / area (pi r^2 up to edge rounding).
    assert float(inner[0]) == pytest.approx(1 / (math.pi * 25), rel=0.02)


def test_color_jitter_keeps_grey_and_rotates_hue() -> None:
    grey = torch.full((2, 3, 4, 4), 0.4)
    params = {"hue_shift": torch.tensor([0.05, -0.05]), "saturation": torch.tensor([1.4, 0.6])}
    assert torch.allclose(D.apply_color_jitter(grey, params), grey, atol=1e-6)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 0.8
    green = D.apply_color_jitter(red, {"hue_shift": torch.tensor([1 / 3]), "saturation": torch.tensor([1.0])})
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 0.8, 0.0]), atol=1e-5)
    pale = D.apply_color_jitter(red, {"hue_shift": torch.tensor([0.0]), "saturation": torch.tensor([0.5])})
    assert torch.allclose(pale[0, :, 0, 0], torch.tensor([0.8, 0.4, 0.4]), atol=1e-5)
    x = _images()
    assert torch.allclose(D.hsv_to_rgb(D.rgb_to_hsv(x)), x, atol=1e-5)


def test_brightness_contrast() -> None:
    x = _images()
    ident = {"brightness": torch.ones(3), "contrast": torch.ones(3)}
    assert torch.allclose(D.apply_brightness(x, ident), x, atol=1e-6)
    half = {"brightness": torch.full((3,), 0.5), "contrast": torch.ones(3)}
    assert torch.allclose(D.apply_brightness(x, half), 0.5 * x, atol=1e-6)
    flat = {"brightness": torch.ones(3), "contrast": torch.zeros(3)}
    out = D.apply_brightness(x, flat)
    assert float(out.std(dim=(1, 2, 3)).max()) < 1e-6


def test_geometric_identity_and_direction() -> None:
    x = _images()
    assert torch.allclose(D.apply_perspective(x, {"corner_shift": torch.zeros(3, 4, 2)}), x, atol=1e-5)
    assert torch.allclose(D.apply_shear(x, {"shear": torch.zeros(3, 2)}), x, atol=1e-5)
    # A pure x-shear only moves pixels along rows, so an image whose rows are constant is unchanged.
    rows = torch.linspace(0, 1, 24).view(1, 1, 24, 1).expand(1, 3, 24, 20).contiguous()
    sheared = D.apply_shear(rows, {"shear": torch.tensor([[0.15, 0.0]])})
    assert torch.allclose(sheared, rows, atol=1e-5)
    assert not torch.allclose(D.apply_shear(rows, {"shear": torch.tensor([[0.0, 0.15]])}), rows, atol=1e-3)


def test_perspective_moves_corners() -> None:
    x = _images(n=1, h=40, w=40)
    # All four corners shifted right by 0.1 of the side (0.2 normalised) is a translation by 4 px.
    shift = torch.zeros(1, 4, 2)
    shift[0, :, 0] = 0.2
    y = D.apply_perspective(x, {"corner_shift": shift})
    assert torch.allclose(y[..., 4:], x[..., :-4], atol=1e-5)
    # Moving only the top-left corner: read the sampled input coordinates off linear ramps (bilinear sampling of
    # a ramp is exact). The fixed bottom-right corner barely moves; the top-left pixels come from ~4 px away.
    ramp = torch.arange(40.0) / 39.0
    coords = torch.stack((ramp.view(1, 40).expand(40, 40), ramp.view(40, 1).expand(40, 40), torch.zeros(40, 40)))
    shift = torch.zeros(1, 4, 2)
    shift[0, 0] = torch.tensor([0.2, 0.2])
    y = D.apply_perspective(coords.unsqueeze(0), {"corner_shift": shift})
    moved = (y[0, :2] - coords[:2]).abs() * 39.0
    assert float(moved[:, 39, 39].max()) < 0.1
    assert float(moved[:, 8, 8].min()) > 2.0


def test_rescale_removes_fine_detail_keeps_flat() -> None:
    checker = ((torch.arange(24).view(24, 1) + torch.arange(24).view(1, 24)) % 2).float()
    x = checker.expand(2, 3, 24, 24).contiguous()
    y = D.apply_rescale(x, {"factor": torch.tensor([2.0, 3.0])})
    assert y.shape == x.shape
    assert float((y - 0.5).abs().max()) < 0.25, "a 1-px checkerboard must not survive a 2x down/up"
    flat = torch.full((2, 3, 24, 24), 0.3)
    assert torch.allclose(D.apply_rescale(flat, {"factor": torch.tensor([1.5, 2.5])}), flat, atol=1e-5)
    factors = D.sample_rescale(400, _gen(0), 24, 24)["factor"]
    assert set(factors.tolist()) == set(D.RESCALE_FACTORS)


def test_patch_shuffle_permutes_within_2x2_patches() -> None:
    x = _images(n=2, h=33, w=31)  # odd sizes: the last row and column are not part of any patch
    params = D.sample_patch_shuffle(2, _gen(0), 33, 31)
    y = D.apply_patch_shuffle(x, params)
    assert torch.equal(y[..., 32, :], x[..., 32, :]) and torch.equal(y[..., :, 30], x[..., :, 30])

    def tiles(t: torch.Tensor) -> torch.Tensor:
        t = t[..., :32, :30].reshape(2, 3, 16, 2, 15, 2).permute(0, 1, 2, 4, 3, 5)
        return t.reshape(2, 3, 16, 15, 4)

    tx, ty = tiles(x), tiles(y)
    assert torch.equal(tx.sort(dim=-1).values, ty.sort(dim=-1).values), "pixels left their patch"
    # Channels move together: the same permutation applies to R, G and B.
    perm = params["permutation"]
    assert torch.equal(ty, tx.gather(-1, perm.unsqueeze(1).expand_as(tx)))
    moved = (perm != torch.arange(4)).any(dim=-1).float().mean()
    # P(shuffled and not the identity) = 0.2 * 23/24 ~= 0.19 over 480 patches.
    assert 0.13 < float(moved) < 0.25


def test_apply_rejects_bad_input() -> None:
    with pytest.raises(ShapeError):
        D.apply_gauss_blur(torch.zeros(3, 8, 8), {})
    with pytest.raises(ShapeError):
        D.apply_shear(torch.zeros(2, 3, 8, 8), {"shear": torch.zeros(3, 2)})
    with pytest.raises(ConfigError):
        D.apply_shear(torch.zeros(2, 3, 8, 8), {})


# ------------------------------------------------------------------------------------------ paths and budgets


def test_all_paths_count_and_order() -> None:
    paths = D.all_paths()
    assert len(paths) == 11 + 11**2 + 11**3 == 1463
    assert len(set(paths)) == 1463
    assert paths[:11] == [(n,) for n in NAMES]
    assert paths[11] == ("gauss_noise", "gauss_noise") and paths[12] == ("gauss_noise", "speckle")
    assert paths[-1] == ("patch_shuffle",) * 3
    assert Counter(len(p) for p in paths) == {1: 11, 2: 121, 3: 1331}
    assert len(D.all_paths(num_degradations=3, max_len=2)) == 3 + 9
    with pytest.raises(ConfigError):
        D.all_paths(num_degradations=12)


def test_budgets() -> None:
    assert D.select_paths("none", 0) == []
    assert D.select_paths("paper", 0) == D.all_paths()
    standard = D.select_paths("standard", 0)
    assert len(standard) == 66 and len(set(standard)) == 66
    assert Counter(len(p) for p in standard) == {1: 11, 2: 22, 3: 33}
    order = {p: i for i, p in enumerate(D.all_paths())}
    assert [order[p] for p in standard] == sorted(order[p] for p in standard)
    for length, rounds in ((2, 2), (3, 3)):
        for pos in range(length):
            counts = Counter(p[pos] for p in standard if len(p) == length)
            assert counts == {n: rounds for n in NAMES}, f"length {length} position {pos} is unbalanced"
    assert D.select_paths("standard", 0) == standard
    assert D.select_paths("standard", 1) != standard
    with pytest.raises(ConfigError, match="standard"):
        D.select_paths("huge", 0)


def test_fast_budget_is_one_balanced_round_of_the_standard_pairs() -> None:
    for seed in (0, 1):
        fast, standard = D.select_paths("fast", seed), D.select_paths("standard", seed)
        assert len(fast) == 11 and all(len(p) == 2 for p in fast)
        assert set(fast) <= set(standard), "fast must reuse standard's chains (one enrolment grows into the other)"
        for pos in range(2):
            assert Counter(p[pos] for p in fast) == {n: 1 for n in NAMES}, f"position {pos} is unbalanced"
        order = {p: i for i, p in enumerate(D.all_paths())}
        assert [order[p] for p in fast] == sorted(order[p] for p in fast)
    # Golden: the first pair of seed 0's standard sample is fast's first chain on every machine.
    assert D.select_paths("fast", 0)[0] == ("gauss_noise", "rescale")
    assert D.select_paths("fast", 1) != D.select_paths("fast", 0)


def test_standard_budget_is_fixed_across_machines() -> None:
    # Golden values: SHA-256 ordering must not drift between machines, Python or torch versions.
    labels = [D.path_label(p) for p in D.select_paths("standard", 0)]
    assert labels[11:13] == ["gauss_noise>down>rescale", "gauss_noise>down>patch_shuffle"]
    assert labels[-1] == "patch_shuffle>down>rescale>down>patch_shuffle"
    assert D.node_seed(42, ("disk_blur",)) == D.node_seed(42, ["disk_blur"])
    assert D.node_seed(42, ("disk_blur",)) != D.node_seed(43, ("disk_blur",))


def test_path_label_roundtrip() -> None:
    assert D.path_label(("gauss_noise", "disk_blur")) == "gauss_noise>down>disk_blur"
    assert D.parse_path_label("speckle>down>shear>down>rescale") == ("speckle", "shear", "rescale")
    with pytest.raises(ConfigError):
        D.parse_path_label("speckle>down>sharpen")
    with pytest.raises(ConfigError):
        D.path_label(())


# ------------------------------------------------------------------------------------------ gallery


def test_degrade_gallery_sizes_order_and_chain() -> None:
    x = _images(n=2, h=32, w=28)
    paths = [("shear", "gauss_blur", "disk_blur"), ("disk_blur",), ("gauss_blur", "motion_blur")]
    out = D.degrade_gallery(x, paths, seeds=[1, 2])
    assert [o.path for o in out] == paths
    assert [tuple(o.images.shape) for o in out] == [(2, 3, 8, 7), (2, 3, 32, 28), (2, 3, 16, 14)]
    assert out[1].label == "disk_blur"
    # Deterministic steps: the chain is literally eq. (1).
    expected = D.apply_motion_blur(D.down2(D.apply_gauss_blur(x, {})), {})
    assert torch.allclose(out[2].images, expected, atol=1e-6)


def test_prefix_reuse_matches_path_alone() -> None:
    x = _images(n=3, h=32, w=32)
    seeds = [11, 22, 33]
    paths = D.select_paths("standard", 0)
    together = {d.path: d.images for d in D.degrade_gallery(x, paths, seeds)}
    for path in [paths[0], paths[20], paths[40], paths[-1]]:
        alone = D.degrade_gallery(x, [path], seeds)[0].images
        assert torch.equal(together[path], alone), D.path_label(path)


def test_per_image_results_independent_of_batch() -> None:
    x = _images(n=4, h=32, w=32)
    seeds = [5, 6, 7, 8]
    paths = [("gauss_noise", "patch_shuffle"), ("perspective", "rescale", "color_jitter"), ("speckle",)]
    full = D.degrade_gallery(x, paths, seeds)
    subset = D.degrade_gallery(x[[2, 0]], paths, [seeds[2], seeds[0]])
    for f, s in zip(full, subset):
        assert torch.allclose(f.images[[2, 0]], s.images, atol=1e-6)
    # Same pixels with a different seed give a different hypothesis; same seed the same one.
    again = D.degrade_gallery(x[:1], paths, [5])
    other = D.degrade_gallery(x[:1], paths, [99])
    assert torch.allclose(again[0].images, full[0].images[:1], atol=1e-6)
    assert not torch.allclose(other[0].images, full[0].images[:1], atol=1e-3)
    seeds_t = D.degrade_gallery(x, paths[:1], torch.tensor(seeds))
    assert torch.equal(seeds_t[0].images, full[0].images)


def test_iter_degraded_progress_cancel_and_errors() -> None:
    x = _images(n=2, h=16, w=16)
    calls: list[tuple[int, int, str]] = []
    out = list(D.iter_degraded(x, [("shear", "rescale"), ("shear",)], [0, 1],
                               progress=lambda d, t, label: calls.append((d, t, label))))
    assert [o.path for o in out] == [("shear",), ("shear", "rescale")]  # prefix before extension
    assert calls == [(1, 2, "shear"), (2, 2, "shear>down>rescale")]
    with pytest.raises(Cancelled):
        D.degrade_gallery(x, [("shear",)], [0, 1], should_cancel=lambda: True)
    with pytest.raises(ShapeError):
        D.degrade_gallery(x, [("shear",)], [0])
    with pytest.raises(ConfigError):
        D.degrade_gallery(x, [("shear", "blur")], [0, 1])
    with pytest.raises(ConfigError):
        D.degrade_gallery(x, [()], [0, 1])
    assert D.degrade_gallery(x, [], [0, 1]) == []


def test_node_count_is_tree_size() -> None:
    # Paths sharing prefixes are computed once per tree node: 11 + 121 + 1331 nodes for the paper budget would
    # be the same as its path count, but a set of 3 deep paths under one root needs only 1 + 1 + 3 nodes.
    x = _images(n=1, h=16, w=16)
    totals: list[int] = []
    paths = [("brightness", "shear", n) for n in ("gauss_blur", "disk_blur", "rescale")]
    D.degrade_gallery(x, paths, [0], progress=lambda d, t, label: totals.append(t))
    assert totals[-1] == 5 and len(totals) == 5


def test_a_registered_degradation_joins_the_chains_of_every_budget() -> None:
    """Budgets and chains are derived from the bank: a 12th degradation appears in them and degrades."""
    before = {budget: D.select_paths(budget) for budget in ("none", "fast", "standard")}
    extra = D.Degradation("invert_test", "Colour inversion (test only)", lambda b, g, h, w: {},
                          lambda images, params: 1.0 - images)
    D.register_degradation(extra)
    try:
        assert D.available_degradations()[-1] == "invert_test"
        assert len(D.all_paths()) == 12 + 12 ** 2 + 12 ** 3
        for budget in ("fast", "standard", "paper"):
            paths = D.select_paths(budget)
            assert any("invert_test" in p for p in paths), budget
            positions = {p.index("invert_test") for p in paths if "invert_test" in p}
            assert positions == ({0, 1} if budget == "fast" else {0, 1, 2}), budget
        fast = D.select_paths("fast")
        outputs = D.degrade_gallery(_images(n=2, h=64, w=64), fast, [1, 2])
        assert [o.path for o in outputs] == fast
        assert D.settings_record()["names"][-1] == "invert_test"
    finally:
        bank._REGISTRY.pop("invert_test")
    assert {budget: D.select_paths(budget) for budget in ("none", "fast", "standard")} == before
