"""PDF case report: rendered with poppler (pdftotext/pdftoppm), pages and text checked; export logged."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.calibration import fit_calibration
from forensic_face.engine.config import EngineConfig
from forensic_face.report.pdf import ENHANCED_LABEL, write_case_report
from forensic_face.store import CaseStore

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
                                   reason="poppler-utils (pdftotext, pdftoppm) not installed")


@pytest.fixture()
def case_with_search(tmp_path: Path) -> tuple[Path, Path]:
    gallery = make_gallery(tmp_path / "gallery")
    probe = write_image(tmp_path / "probe.png")
    rng = np.random.default_rng(0)
    calibration = fit_calibration(rng.normal(0.7, 0.1, 200), rng.normal(0.2, 0.1, 400), band=8,
                                  conditions="Synthetic reference scores.")
    path = tmp_path / "case.ffcase"
    with CaseStore.create(path, "2026-0042", "Robbery at Main Street", "Jana Nováková") as store:
        store.add_evidence(probe, "probe")
        search_id = store.record_search(make_search_result(probe, gallery), EngineConfig(scales=(2, 4)),
                                        gallery=gallery, calibration=calibration)
        store.set_decision(search_id, 1, "possible lead", "ear shape consistent")
        store.set_decision(search_id, 3, "excluded", "different hairline")
    return path, probe


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


@needs_poppler
def test_report_renders_all_sections_and_logs_export(case_with_search: tuple[Path, Path], tmp_path: Path) -> None:
    path, probe = case_with_search
    out = tmp_path / "out" / "report.pdf"
    outcome = write_case_report(path, out)
    assert out.is_file() and outcome.verification.ok
    assert outcome.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    text = _text(out)
    squashed = " ".join(text.split())
    for expected in ("Face comparison report", "2026-0042", "Robbery at Main Street", "Jana Nováková",
                     "Evidence and integrity", str(probe.resolve()), "Verified at report time",
                     "Ranked candidates", "Alice_A", "Bob_B", "Carol_C", "possible lead:", "ear shape", "excluded:", "different hairline", "not reviewed", "support for H1",
                     "Meet-in-the-middle: Multi-scale upsampling and matching for cross-resolution face recognition",
                     "Grm", "Özata", "Štruc", "Ekenel", "WACV", "Limitations", "not an identification", "LFW",
                     "may differ", "Processing log", "Conclusion and sign-off", "Independent reviewer",
                     "native size", "nearest neighbour"):
        assert expected in squashed, expected
    sha = hashlib.sha256(probe.read_bytes()).hexdigest()
    assert sha[:40] in text.replace("\n", "").replace(" ", "")
    assert squashed.count("INVESTIGATIVE") >= 3 and ENHANCED_LABEL.split(":")[0] in squashed
    pages = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    assert f"Pages: {outcome.num_pages}" in " ".join(pages.split()) and outcome.num_pages >= 3
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")], check=True)
    from PIL import Image

    with Image.open(next(tmp_path.glob("page*.png"))) as page:
        pixels = np.asarray(page.convert("L"))
    assert pixels.shape[0] > pixels.shape[1] and (pixels < 128).mean() > 0.01  # A4 portrait with content
    with CaseStore.open(path) as store:
        entries = store.audit_entries()
    assert [e.action for e in entries[-2:]] == ["verify", "export"]
    assert entries[-1].details["sha256"] == outcome.sha256 and entries[-1].details["pages"] == outcome.num_pages


@needs_poppler
def test_report_of_tampered_case_says_verification_failed(case_with_search: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    path, probe = case_with_search
    data = bytearray(probe.read_bytes())
    data[-30] ^= 0xFF
    probe.write_bytes(bytes(data))
    outcome = write_case_report(path, tmp_path / "r.pdf", check_galleries=False)
    assert not outcome.verification.ok
    squashed = " ".join(_text(tmp_path / "r.pdf").split())
    assert "VERIFICATION FAILED" in squashed and "CHANGED evidence" in squashed


@needs_poppler
def test_report_command(case_with_search: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from forensic_face.cli.case import ReportCommand

    path, _ = case_with_search
    command = ReportCommand()
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    out = tmp_path / "cli.pdf"
    assert command.run(parser.parse_args([str(path), "--out", str(out), "--top", "1"])) == 0
    assert out.is_file() and "case verification: intact" in capsys.readouterr().out
    from forensic_face.cli import main

    assert main(["report", str(tmp_path / "none.ffcase"), "--out", str(out)]) == 2


def test_case_commands(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    # A settings.toml of its own: a window test may have saved an examiner in the session's config folder.
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))

    from forensic_face.cli.case import CaseCommand

    command = CaseCommand()
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    path = tmp_path / "x.ffcase"
    from forensic_face.cli import main

    # No examiner named and none saved: the case is not created under the operating-system user's name.
    assert main(["case", "new", str(path), "--number", "N-9"]) == 2 and not path.exists()
    assert "examiner" in capsys.readouterr().err
    assert command.run(parser.parse_args(["new", str(path), "--number", "N-9", "--title", "T",
                                          "--examiner", "J. Doe"])) == 0
    probe = write_image(tmp_path / "p.png")
    assert command.run(parser.parse_args(["add-evidence", str(path), str(probe)])) == 0
    capsys.readouterr()
    assert command.run(parser.parse_args(["show", str(path), "--json"])) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["case_number"] == "N-9" and shown["evidence"][0]["path"] == str(probe.resolve())
    assert shown["audit_entries"] == 2

    assert main(["case", "new", str(path), "--number", "N-9"]) == 2  # exists: an error, exit 2 as everywhere
    assert command.run(parser.parse_args(["new", "named-case", "--number", "N-10", "--examiner", "J. Doe"])) == 0
    from forensic_face.paths import data_dir

    assert (data_dir() / "cases" / "named-case.ffcase").is_file()


@needs_poppler
def test_report_states_the_open_set_cue_or_that_there_is_none(case_with_search: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from tests.cli.test_calibrate import RECOGNIZER_SHA, _provenance

    from forensic_face.calibration import CalibrationSet, engine_conditions
    from forensic_face.calibration import open_set

    monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", tmp_path / "none")
    path, probe = case_with_search
    write_case_report(path, tmp_path / "plain.pdf")
    squashed = " ".join(_text(tmp_path / "plain.pdf").split())
    assert "Open set: Open-set cue not available" in squashed and "in the gallery" in squashed

    # A search of a 12-identity gallery whose rank 1 does not stand out, under settings with an open-set fit.
    config = EngineConfig(scales=(2, 4))
    gallery = make_gallery(tmp_path / "gallery2")
    result = make_search_result(probe, gallery)
    result = dataclasses.replace(result, ranking=result.ranking + tuple((f"Other_{k}", 0.1) for k in range(9)),
                                 provenance={**_provenance(config), "seed": 0, "scales_used": [2, 4]})
    rng = np.random.default_rng(0)
    cal = dataclasses.replace(fit_calibration(rng.normal(3, 1, 50), rng.normal(0, 1, 50), band=9),
                              slope=1.0, intercept=-3.0, lower_log10_lr=-2.0, upper_log10_lr=3.0,
                              method=f"{open_set.METHOD_PREFIX}top1; test", conditions="Synthetic open-set fit.")
    conditions = {**engine_conditions(config, RECOGNIZER_SHA), "scales": [2, 4]}
    (tmp_path / "gallery_30").mkdir()
    CalibrationSet((cal,), {"engine": conditions}).save(tmp_path / "gallery_30" / "open_set.json")
    monkeypatch.setattr(open_set, "OPEN_SET_CALIBRATION_DIR", tmp_path)
    case = tmp_path / "open.ffcase"
    with CaseStore.create(case, "2026-0043", "Open set", "Jana Nováková") as store:
        store.add_evidence(probe, "probe")
        store.record_search(result, config, gallery=gallery)
    write_case_report(case, tmp_path / "open.pdf")
    squashed = " ".join(_text(tmp_path / "open.pdf").split())
    # log10 LR = 0.9 - 3, bounded to -2: in the leads summary (a table cell, wrapped) and in the probe's section,
    # with its calibration and caveat
    assert "none. Open set: the person may not" in squashed and "(open-set LR 0.01)" in squashed
    assert ("Open set: The person may not be in the gallery: the top of this ranking is more typical of searches "
            "whose person is absent (open-set LR 0.01, moderate support for H2 (the person is not in the gallery))"
            ) in squashed
    assert "Synthetic open-set fit." in squashed
    assert "not which candidate is the person" in squashed and "Statistic top1 = 0.9" in squashed
