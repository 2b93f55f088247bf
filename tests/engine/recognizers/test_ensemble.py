"""Recognizer ensembles: building them by name, member-wise fusion, and a search with one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from forensic_face.calibration import engine_conditions
from forensic_face.engine import Engine
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.errors import ConfigError, ShapeError
from forensic_face.engine.fusion import canonical_fusions, combine_member_scores, fuse_scores
from forensic_face.engine.imaging import load_image
from forensic_face.engine.recognizers import create_recognizer, template_family
from forensic_face.engine.recognizers.ensemble import RecognizerEnsemble, ensemble_members

CPU = torch.device("cpu")


def _templates(gen: torch.Generator, dims: tuple[int, ...], identities: int = 6
               ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Random probe ``{s: (m_s, D)}`` and gallery ``{s: (B, n_s, D)}`` templates, each member block unit-norm."""
    def blocks(*shape: int) -> torch.Tensor:
        return torch.cat([torch.nn.functional.normalize(torch.randn(*shape, d, generator=gen), dim=-1)
                          for d in dims], dim=-1)

    probe = {2: blocks(3), 4: blocks(2)}
    gallery = {2: blocks(identities, 4), 4: blocks(identities, 4)}
    return probe, gallery


def _block(templates: dict[int, torch.Tensor], start: int, stop: int) -> dict[int, torch.Tensor]:
    return {s: t[..., start:stop] for s, t in templates.items()}


def test_member_names_are_parsed_and_checked() -> None:
    assert ensemble_members("dlib-resnet-lr") == ["dlib-resnet-lr"]
    assert ensemble_members("dlib-resnet-lr + faceres") == ["dlib-resnet-lr", "faceres"]
    with pytest.raises(ConfigError, match="empty member"):
        ensemble_members("dlib-resnet-lr+")
    with pytest.raises(ConfigError, match="twice"):
        ensemble_members("dlib-resnet+dlib-resnet")


@pytest.mark.parametrize("spec", canonical_fusions())
def test_each_member_is_fused_alone_and_the_scores_averaged(spec: str) -> None:
    gen = torch.Generator().manual_seed(3)
    probe, gallery = _templates(gen, (8, 5))
    both = fuse_scores(probe, gallery, spec, add_as_mean=True, blocks=(8, 5))
    first = fuse_scores(_block(probe, 0, 8), _block(gallery, 0, 8), spec, add_as_mean=True)
    second = fuse_scores(_block(probe, 8, 13), _block(gallery, 8, 13), spec, add_as_mean=True)
    torch.testing.assert_close(both.scores, (first.scores + second.scores) / 2)
    torch.testing.assert_close(both.per_scale_scores, (first.per_scale_scores + second.per_scale_scores) / 2)
    torch.testing.assert_close(both.member_scores, torch.stack([first.scores, second.scores], dim=1))
    for s in (2, 4):
        torch.testing.assert_close(both.similarity[s], (first.similarity[s] + second.similarity[s]) / 2)
    # A member weighted 0 leaves the other's scores.
    only_first = fuse_scores(probe, gallery, spec, add_as_mean=True, blocks=(8, 5), block_weights=(1.0, 0.0))
    torch.testing.assert_close(only_first.scores, first.scores)


def test_one_block_is_the_single_network_fusion_exactly() -> None:
    gen = torch.Generator().manual_seed(4)
    probe, gallery = _templates(gen, (16,))
    plain = fuse_scores(probe, gallery, "T_concat", add_as_mean=True)
    one = fuse_scores(probe, gallery, "T_concat", add_as_mean=True, blocks=(16,), rule="znorm")
    assert torch.equal(plain.scores, one.scores) and one.member_scores is None


def test_znorm_rule_standardises_each_member_over_the_gallery() -> None:
    scores = torch.tensor([[0.1, 0.2, 0.3, 0.4], [10.0, 0.0, 0.0, 0.0]])
    combined = combine_member_scores(scores, torch.tensor([1.0, 1.0]), "znorm")
    z = (scores - scores.mean(1, keepdim=True)) / scores.std(1, keepdim=True)
    torch.testing.assert_close(combined, z.mean(0))
    # A member whose scores spread wider does not outvote the other under znorm as it does under mean.
    assert int(combine_member_scores(scores, torch.tensor([1.0, 1.0]), "mean").argmax()) == 0
    with pytest.raises(ConfigError, match="unknown ensemble rule"):
        combine_member_scores(scores, torch.tensor([1.0, 1.0]), "max")


def test_bad_blocks_and_weights_are_refused() -> None:
    gen = torch.Generator().manual_seed(5)
    probe, gallery = _templates(gen, (8, 5))
    with pytest.raises(ShapeError, match="do not tile"):
        fuse_scores(probe, gallery, "T_concat", blocks=(8, 4))
    with pytest.raises(ConfigError, match="ensemble weights"):
        fuse_scores(probe, gallery, "T_concat", blocks=(8, 5), block_weights=(1.0,))
    with pytest.raises(ConfigError, match="ensemble_weights"):
        EngineConfig(ensemble_weights=(-1.0, 2.0))
    with pytest.raises(ConfigError, match="ensemble_rule"):
        EngineConfig(ensemble_rule="vote")


def test_ensemble_recognizer_concatenates_its_members() -> None:
    torch.set_num_threads(1)
    ensemble = create_recognizer("dlib-resnet+dlib-resnet-lr", CPU, batch_size=4, flip_test=True)
    assert isinstance(ensemble, RecognizerEnsemble)
    assert ensemble.name == "dlib-resnet+dlib-resnet-lr" and ensemble.member_dims == (128, 128)
    assert ensemble.flip_test and all(m.flip_test for m in ensemble.members)
    assert template_family(ensemble) == "dlib-resnet+flip&dlib-resnet-lr+flip"
    other_order = create_recognizer("dlib-resnet-lr+dlib-resnet", CPU)
    assert other_order.weights_sha256 != ensemble.weights_sha256
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 100, 100, generator=gen)
    landmarks = torch.tensor([[35.0, 40], [65, 40], [50, 55], [38, 72], [62, 72]]).expand(3, -1, -1)
    templates = ensemble.embed_faces(images, landmarks)
    assert templates.shape == (3, 256)
    for member, block in zip(ensemble.members, templates.split(128, dim=1)):
        torch.testing.assert_close(block, member.embed(member.prepare(images, landmarks)))
    with pytest.raises(ConfigError, match="embed_faces"):
        ensemble.prepare(images, landmarks)
    with pytest.raises(ConfigError, match="ambiguous"):
        create_recognizer("dlib-resnet+dlib-resnet-lr", CPU, model_path="x.safetensors")
    with pytest.raises(ConfigError, match="unknown recognizer 'nope'"):
        create_recognizer("dlib-resnet+nope", CPU)


def test_calibration_conditions_name_the_ensemble_rule_only_for_ensembles() -> None:
    single = engine_conditions(EngineConfig(), "a" * 64)
    assert "ensemble_rule" not in single and "ensemble_weights" not in single
    ens = engine_conditions(EngineConfig(recognizer="dlib-resnet-lr+faceres", ensemble_weights=(2.0, 1.0)), "b" * 64)
    assert ens["ensemble_rule"] == "znorm" and ens["ensemble_weights"] == pytest.approx([2 / 3, 1 / 3])
    assert engine_conditions(EngineConfig(recognizer="dlib-resnet-lr+faceres", ensemble_rule="mean",
                                          ensemble_weights=(2.0, 1.0)), "b" * 64) != ens


def test_search_with_an_ensemble_averages_its_members_searches(lfw_test_people: list[tuple[str, int]], lfw_image,
                                                               tmp_path: Path) -> None:
    people = [name for name, count in lfw_test_people if count >= 2][:6]
    gallery_dir = tmp_path / "gallery"
    gallery_dir.mkdir()
    for name in people:
        shutil.copy(lfw_image(name, 1), gallery_dir / f"{name}.jpg")
    base = EngineConfig(device="cpu", budget="none", scales=(2,), num_blur_hypotheses=1, upsampler="bicubic",
                        top_k=3, flip_test=False)
    probe = load_image(lfw_image(people[0], 2))
    cache = tmp_path / "templates"
    ensemble = Engine(base.replace(recognizer="dlib-resnet+dlib-resnet-lr", ensemble_rule="mean"), cache_dir=cache)
    gallery = ensemble.enroll(gallery_dir)
    singles = [dict(Engine(base.replace(recognizer=name), cache_dir=cache).search(probe, gallery).ranking)
               for name in ("dlib-resnet", "dlib-resnet-lr")]
    # Each member keeps its templates under its own key: the ensemble embeds nothing its members already did.
    result = ensemble.search(probe, gallery)
    assert ensemble.cache.misses == 0 and ensemble.cache.hits == 2 * (1 + len(people))
    for identity, score in result.ranking:
        assert score == pytest.approx((singles[0][identity] + singles[1][identity]) / 2, abs=1e-5)
    top = result.candidates[0]
    assert set(top.member_scores) == {"dlib-resnet", "dlib-resnet-lr"}
    assert top.member_scores["dlib-resnet"] == pytest.approx(singles[0][top.identity], abs=1e-5)
    members = result.provenance["recognizer"]["members"]
    assert [m["name"] for m in members] == ["dlib-resnet", "dlib-resnet-lr"]
    assert result.provenance["recognizer"]["rule"] == "mean"
    # The provisional ranking scores each member on its own block too.
    provisional = ensemble.provisional_search(probe, gallery)
    assert provisional.candidates[0].score <= 1.0
    # A recorded search keeps each member's score, and the report prints them.
    from forensic_face.report.pdf import write_case_report
    from forensic_face.store.case_store import CaseStore

    case_path = tmp_path / "case.ffcase"
    with CaseStore.create(case_path, "E-1", "Ensemble", "Examiner") as store:
        search_id = store.record_search(ensemble.with_gallery_images(result, gallery, top=3), ensemble.config,
                                        gallery=gallery)
        stored = store.search(search_id)
        assert stored.candidates[0].candidate.member_scores == pytest.approx(top.member_scores)
    pdf = tmp_path / "report.pdf"
    write_case_report(case_path, pdf)
    import subprocess

    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Each network's own score" in " ".join(text.split())


def test_chips_cut_another_way_are_cached_apart(tmp_path: Path) -> None:
    """Same weights, other padding around the template (faceres changed its padding once): other templates."""
    engine = Engine(EngineConfig(device="cpu", recognizer="mobileface", flip_test=False), cache_dir=tmp_path)
    before = engine.recognizer_digest()
    engine.recognizer.template_padding = 0.25
    assert engine.recognizer_digest() != before


def test_calibrations_match_the_precision_a_search_ran_in() -> None:
    """'auto' names no arithmetic: a search is matched by the precision its recognizer ran in."""
    from forensic_face.calibration import engine_conditions_from_provenance

    def provenance(ran_in: str) -> dict[str, object]:
        return {"config": EngineConfig(precision="auto").to_dict(),
                "recognizer": {"weights_sha256": "a" * 64, "precision": ran_in}, "upsampler": {"weights_sha256": {}}}

    assert engine_conditions_from_provenance(provenance("fp32")) == engine_conditions(EngineConfig(), "a" * 64)
    assert engine_conditions_from_provenance(provenance("bf16")) == engine_conditions(
        EngineConfig(precision="bf16"), "a" * 64)
    assert engine_conditions_from_provenance(provenance("bf16")) != engine_conditions(EngineConfig(), "a" * 64)


def test_a_costly_member_can_skip_the_flip_test(tmp_path: Path) -> None:
    both = Engine(EngineConfig(device="cpu", recognizer="dlib-resnet+mobileface"), cache_dir=tmp_path)
    one = Engine(EngineConfig(device="cpu", recognizer="dlib-resnet+mobileface", ensemble_flip_test=(True, False)),
                 cache_dir=tmp_path)
    assert [m.flip_test for m in one.members] == [True, False]
    # The first member's templates are shared with the plain ensemble's; the second's are cached apart.
    assert one.recognizer_digest(one.members[0]) == both.recognizer_digest(both.members[0])
    assert one.recognizer_digest(one.members[1]) != both.recognizer_digest(both.members[1])
    assert template_family(one.recognizer) == "dlib-resnet+flip&mobileface"
    assert [m["flip_test"] for m in one.provenance()["recognizer"]["members"]] == [True, False]
    assert engine_conditions(one.config, "c" * 64)["ensemble_flip_test"] == [True, False]
    wrong = Engine(EngineConfig(device="cpu", recognizer="dlib-resnet", ensemble_flip_test=(True, False)),
                   cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="one on/off per ensemble member"):
        wrong.recognizer
