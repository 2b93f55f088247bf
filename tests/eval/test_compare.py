"""Paired rank-1 comparison of two benchmark runs (forensic_face.eval.compare, `forensic-face eval-compare`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forensic_face.cli import main
from forensic_face.engine.errors import ConfigError
from forensic_face.eval.compare import compare_rank1, sign_test_p


def _run(folder: Path, hits: list[bool], names: list[str] | None = None) -> Path:
    """A run folder whose probe i is found at rank 1 exactly when hits[i] (gallery of 3 identities)."""
    folder.mkdir(parents=True)
    mated = np.array([i % 3 for i in range(len(hits))])
    scores = np.zeros((len(hits), 3), dtype=np.float32)
    for i, hit in enumerate(hits):
        scores[i, mated[i]] = 0.5
        scores[i, (mated[i] + 1) % 3] = 0.4 if hit else 0.9
    # a failed detection (mated -1) is a miss in both runs
    mated[-1] = -1
    np.savez(folder / "scores.npz", scores=scores, mated_index=mated,
             probe_names=np.array(names or [f"p{i}.png" for i in range(len(hits))]),
             identities=np.array(["A", "B", "C"]))
    return folder


def test_sign_test_p() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 5) == pytest.approx(1.0)
    # 10 wins, 0 losses: 2 * 0.5**10 (two-sided).
    assert sign_test_p(10, 0) == pytest.approx(2 * 0.5**10)
    assert sign_test_p(120, 80) < 0.01 < sign_test_p(110, 90)


def test_compare_counts_discordant_probes(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [True, True, False, False, True, False, True])
    b = _run(tmp_path / "b", [True, False, True, True, True, True, True])
    result = compare_rank1(a, b)
    assert result.num_probes == 7
    # the last probe has no mated column: a miss for both, whatever its scores say
    assert result.rank1_a == pytest.approx(3 / 7) and result.rank1_b == pytest.approx(5 / 7)
    assert (result.only_a, result.only_b) == (1, 3)
    assert result.mcnemar_p == pytest.approx(sign_test_p(3, 1))
    same = compare_rank1(a, a)
    assert (same.only_a, same.only_b, same.mcnemar_p) == (0, 0, 1.0)


def test_compare_refuses_different_probes(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [True, False, True])
    b = _run(tmp_path / "b", [True, False, True], names=["x.png", "y.png", "z.png"])
    with pytest.raises(ConfigError, match="different probes"):
        compare_rank1(a, b)
    with pytest.raises(ConfigError, match="scores.npz"):
        compare_rank1(a, tmp_path / "missing")


def test_cli_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _run(tmp_path / "a", [False, False, False, True])
    b = _run(tmp_path / "b", [True, True, True, True])
    assert main(["eval-compare", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["only_a"], out["only_b"]) == (0, 3) and out["mcnemar_p"] == pytest.approx(0.25)
    assert main(["eval-compare", str(a), str(tmp_path / "nope")]) == 2
    assert "scores.npz" in capsys.readouterr().err


def test_documented_eval_command_pins_the_upsampler() -> None:
    """A results document's command must reproduce its run even after the default upsampler changes."""
    from forensic_face.cli.evaluate import pinned_argv

    assert pinned_argv(["--width", "24"], "--upsampler", "bicubic") == ["--width", "24", "--upsampler", "bicubic"]
    assert pinned_argv(["--upsampler", "face-sr", "--ablation"], "--upsampler", "face-sr") == [
        "--ablation", "--upsampler", "face-sr"]
    assert pinned_argv(["--upsampler=bicubic"], "--upsampler", "bicubic") == ["--upsampler", "bicubic"]
