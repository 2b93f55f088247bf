"""`forensic-face eval-decompose`: one eval run per oracle variant, one table in the document."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from forensic_face.cli import main
from forensic_face.cli import evaluate as eval_cli


def test_decompose_refuses_options_it_sets_and_unknown_variants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-decompose", "--", "--camera", "clean"]) == 2
    assert "set by eval-decompose" in capsys.readouterr().err
    assert main(["eval-decompose", "--variants", "pipeline,psychic"]) == 2
    assert "psychic" in capsys.readouterr().err


def test_decompose_runs_each_variant_and_writes_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []

    def fake_run(self: eval_cli.EvalCommand, args: argparse.Namespace) -> int:
        seen.append(args)
        rank1 = 0.2 + 0.1 * (args.camera == "clean") + 0.05 * args.oracle_landmarks
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "result.json").write_text(json.dumps({
            "rank1": rank1, "rank5": 0.5, "rank10": 0.6, "num_probes": 10, "counts": {"no-face": 1},
            "config": {"recognizer": args.recognizer, "upsampler": "bicubic", "scales": [2],
                       "num_blur_hypotheses": 1, "budget": args.budget, "fusion": "S_add,S_add"}}))
        return 0

    monkeypatch.setattr(eval_cli.EvalCommand, "run", fake_run)
    doc = tmp_path / "accuracy.md"
    doc.write_text("# prose kept\n")
    assert main(["eval-decompose", "--out", str(tmp_path / "runs"), "--label", "before", "--doc", str(doc),
                 "--", "--budget", "none", "--subset", "3"]) == 0
    assert [(a.camera, a.oracle_landmarks, a.fallback_known_face) for a in seen] == [
        ("fixed", False, False), ("fixed", False, True), ("fixed", True, False), ("clean", False, False),
        ("clean", True, False)]
    assert all(a.budget == "none" and a.subset == 3 for a in seen)
    text = doc.read_text()
    assert text.startswith("# prose kept") and "| clean-probe+oracle-landmarks |" in text and "| 35.00 |" in text
    # A second decomposition under another label sits beside the first; the same label replaces its own table.
    assert main(["eval-decompose", "--out", str(tmp_path / "r2"), "--label", "after", "--doc", str(doc),
                 "--variants", "pipeline"]) == 0
    assert main(["eval-decompose", "--out", str(tmp_path / "r3"), "--label", "after", "--doc", str(doc),
                 "--variants", "pipeline"]) == 0
    text = doc.read_text()
    assert text.count("decomposition:before:begin") == 1 and text.count("decomposition:after:begin") == 1
