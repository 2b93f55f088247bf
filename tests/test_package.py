"""The frozen desktop build (packaging/build.sh -> dist/forensic_face/) works on a bare machine: no Python env,
an empty HOME, no network. Run with ``make package-test`` after ``make package``.

Each executable runs with a minimal environment (``env -i`` style: no PYTHONPATH, no venv on PATH, HOME an empty
folder, proxies pointing nowhere) and, where ``unshare`` allows it, in a network namespace with no interfaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import forensic_face

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DIST = Path(os.environ.get("FORENSIC_FACE_DIST_DIR", PROJECT_ROOT / "dist" / "forensic_face"))
CLI = DIST / "forensic-face"
GUI = DIST / "forensic-face-gui"


@pytest.fixture(scope="module")
def built() -> Path:
    if not CLI.is_file():
        pytest.skip(f"no desktop build at {DIST}; build it with `make package` (packaging/build.sh)")
    return DIST


def _no_network_prefix() -> list[str]:
    """``unshare`` into an empty network namespace when the kernel lets us (as root or with user namespaces)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    for flags in (["-n"], ["-r", "-n"]):
        if subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0:
            return [unshare, *flags]
    return []


def _run(args: list[str], home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        # Any HTTP(S) attempt fails at once even without a network namespace.
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    return subprocess.run([*_no_network_prefix(), *args], env=env, cwd=home, capture_output=True, text=True,
                          timeout=timeout)


def test_bundle_layout(built: Path) -> None:
    internal = built / "_internal"
    assert (internal / "resources" / "styles" / "forensic_face.qss").is_file()
    assert (internal / "resources" / "icons" / "forensic_face.svg").is_file()
    for name in ("pnet", "rnet", "onet"):
        assert (internal / "resources" / "weights" / "mtcnn" / f"{name}.pt").is_file()
    models = internal / "face_recognition_models" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["dlib_face_recognition_resnet_model_v1.dat"]
    shipped_calibrations = sorted(p.name for p in (PROJECT_ROOT / "resources" / "calibration").glob("*.json"))
    assert sorted(p.name for p in (internal / "resources" / "calibration").glob("*.json")) == shipped_calibrations
    open_set = PROJECT_ROOT / "resources" / "calibration" / "open_set"
    bundled = internal / "resources" / "calibration" / "open_set"
    assert sorted(p.relative_to(bundled) for p in bundled.glob("gallery_*/*.json")) == sorted(
        p.relative_to(open_set) for p in open_set.glob("gallery_*/*.json"))
    if (PROJECT_ROOT / "resources" / "weights" / "manifest.json").is_file():
        assert (internal / "resources" / "weights" / "manifest.json").is_file()
    # Every shipped weights file and the licence texts of the third-party ones.
    for folder, pattern in (("weights", "*.safetensors"), ("licenses", "*")):
        shipped = sorted(p.name for p in (PROJECT_ROOT / "resources" / folder).glob(pattern))
        assert sorted(p.name for p in (internal / "resources" / folder).glob(pattern)) == shipped
    assert not (internal / "torchvision").exists(), "torchvision must not be bundled"
    assert not (internal / "facenet_pytorch").exists(), "only facenet-pytorch's weight files are bundled"
    assert GUI.is_file() and os.access(GUI, os.X_OK)


def test_cli_version(built: Path, tmp_path: Path) -> None:
    result = _run([str(CLI), "--version"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"forensic-face {forensic_face.__version__}"


@pytest.mark.lfw
def test_cli_search_offline_with_empty_home(built: Path, tmp_path: Path, lfw_image) -> None:  # type: ignore[no-untyped-def]
    """Enroll two LFW identities and search a 64 px still of one of them; the true identity ranks first."""
    gallery = tmp_path / "gallery"
    for name in ("Abdullah_Gul", "Abdullatif_Sener"):
        (gallery / name).mkdir(parents=True)
        shutil.copy(lfw_image(name, 1), gallery / name)
    probe = tmp_path / "probe.png"
    still = cv2.resize(cv2.imread(str(lfw_image("Abdullah_Gul", 2))), (64, 64), interpolation=cv2.INTER_AREA)
    assert cv2.imwrite(str(probe), still)
    home = tmp_path / "home"
    home.mkdir()

    result = _run([str(CLI), "search", str(probe), "--gallery", str(gallery), "--budget", "fast", "--scales", "2",
                   "--upsampler", "bicubic", "--hypotheses", "2", "--device", "cpu", "--json"], home, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)
    assert len(records) == 1 and records[0]["error"] is None
    candidates = records[0]["candidates"]
    assert [c["identity"] for c in candidates][:1] == ["Abdullah_Gul"]
    assert len(candidates) == 2
    # First start: the dlib model was converted locally into the (empty) HOME's cache, nothing fetched.
    assert list(home.rglob("dlib-resnet-v1-*.safetensors")), sorted(str(p) for p in home.rglob("*"))


def test_cli_detect_offline(built: Path, tmp_path: Path) -> None:
    """The detector runs in the bundle (no torchvision): a blank image has no face, reported per image."""
    image = tmp_path / "blank.png"
    assert cv2.imwrite(str(image), np.full((80, 80, 3), 128, dtype=np.uint8))
    result = _run([str(CLI), "detect", str(image), "--json", "--device", "cpu"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)
    assert len(records) == 1 and records[0]["faces"] == []
    assert "torchvision" not in result.stderr


def test_gui_smoke_test_offscreen(built: Path, tmp_path: Path) -> None:
    result = _run([str(GUI), "--smoke-test"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "smoke test: window" in result.stderr
