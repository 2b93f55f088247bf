"""Faults and hostile input (issue 34, part B): every case ends with exit status 2 (1 where the command ran and
its answer is negative), a message naming the cause and the file, and no traceback.

Numbered items are the issue's: 5 disk full, 7 memory, 8 special files, 9 read-only case, 11 invalid UTF-8,
12 option values, 13 settings, 15 terminal output. Machine faults run the CLI in a subprocess under a resource
limit (``ulimit -f``, ``ulimit -v``) or on a file made read-only (chmod; ``chattr +i`` when run as root, where
permissions do not stop writes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.hostile_inputs import hostile_name_images, hostile_videos, mutated_images
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.cli import main
from forensic_face.engine.config import EngineConfig
from forensic_face.store import CaseStore

ROOT = Path(__file__).resolve().parents[1]

#: The CLI in a subprocess, optionally under a resource limit set just before ``main`` runs:
#: ``fsize N`` (files of at most N bytes; SIGXFSZ ignored so a write past it fails with EFBIG, as on a full
#: drive) or ``address-space N`` (N bytes more address space than the process maps once the engine is imported).
_LIMITED_CLI = textwrap.dedent("""
    import resource, signal, sys
    from forensic_face.cli import main
    kind, amount, *argv = sys.argv[1:]
    if kind == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(amount), resource.RLIM_INFINITY))
    elif kind == "address-space":
        import forensic_face.engine.search  # torch and the engine are mapped before the room left is set
        with open("/proc/self/status") as status:
            used = int(status.read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (used + int(amount), resource.RLIM_INFINITY))
    sys.exit(main(argv))
""")


@pytest.fixture(autouse=True)
def _matplotlib_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # main() points MPLCONFIGDIR into the cache folder unless it is set; keep that out of other tests.
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))


def _env(**changes: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               PYTHONDONTWRITEBYTECODE="1")
    env.update(changes)
    return env


def run_cli(*args: str | bytes, limit: tuple[str, int] = ("none", 0), timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``forensic-face ARGS`` in a subprocess (see :data:`_LIMITED_CLI`); stdout and stderr as text."""
    argv: list[str | bytes] = [sys.executable, "-c", _LIMITED_CLI, limit[0], str(limit[1]), *args]
    done = subprocess.run(argv, env=env or _env(), capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", "replace"),
                                       done.stderr.decode("utf-8", "replace"))


def assert_clean(code: int, out: str, err: str, expected: int, *fragments: str) -> None:
    """The exit status, no traceback, and each fragment in what the user sees (stdout and stderr)."""
    assert "Traceback" not in err, err
    assert code == expected, (code, out, err)
    for fragment in fragments:
        assert fragment in out + err, (fragment, out, err)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``main(args)`` in this process: (exit status, stdout, stderr); argparse's exit becomes its status."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def case_file(tmp_path: Path) -> Path:
    """A closed case with one search of three candidates (synthetic, no engine run)."""
    path = tmp_path / "case.ffcase"
    gallery = make_gallery(tmp_path / "gallery")
    probe = write_image(tmp_path / "probe.png")
    with CaseStore.create(path, "2026-34", "Faults", "J. Examiner") as store:
        store.add_evidence(probe, "probe")
        store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
    return path


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) read-only for this process: chmod, or ``chattr +i`` as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -- 5: disk full -------------------------------------------------------------------------------------------------
def test_disk_full_while_deciding_names_the_cause_and_keeps_the_case(case_file: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    long_note = "x" * 100_000  # more than the 40 KB the write-ahead log may grow to
    result = run_cli("decide", str(case_file), "1", "1", "excluded", "--note", long_note, limit=("fsize", 40_000))
    assert_clean(result.returncode, result.stdout, result.stderr, 2, str(case_file), "nothing was saved",
                 "at most 40,000 bytes")
    assert "cannot rollback" not in result.stderr
    # Too little room even to open the write-ahead log: said so, not "not a case file".
    result = run_cli("decide", str(case_file), "1", "1", "excluded", limit=("fsize", 2_000))
    assert_clean(result.returncode, result.stdout, result.stderr, 2, str(case_file), "at most 2,000 bytes")
    # Nothing half-written: the case verifies and the decision was not recorded.
    assert_clean(*cli(capsys, "verify", str(case_file)), 0)
    with CaseStore.open(case_file) as store:
        assert store.search(1).candidates[0].decision.decision == "not reviewed"


@contextmanager
def small_drive(folder: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` mounted on ``folder`` (root only; skipped elsewhere)."""
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_drive_while_deciding_says_how_much_is_free(case_file: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with small_drive(tmp_path / "drive", 400) as drive:
        case = drive / case_file.name
        shutil.copy(case_file, case)
        (drive / "filler").write_bytes(bytes(shutil.disk_usage(drive).free - 64 * 1024))
        code, out, err = cli(capsys, "decide", str(case), "1", "1", "excluded", "--note", "x" * 100_000)
        assert_clean(code, out, err, 2, str(case), "nothing was saved", "database or disk is full", "KB free")
        (drive / "filler").unlink()
        assert_clean(*cli(capsys, "verify", "--no-record", str(case)), 0)
        with CaseStore.open(case) as store:
            assert store.search(1).candidates[0].decision.decision == "not reviewed"


# -- 7: memory ----------------------------------------------------------------------------------------------------
def test_still_too_large_for_the_memory_left_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    Image.new("RGB", (4000, 4000), (120, 110, 100)).save(path, quality=50)  # 16 Mpx: about 2.7 GB to search
    result = run_cli("detect", str(path), limit=("address-space", 3 * 2**29))  # 1.5 GiB of room
    assert_clean(result.returncode, result.stdout, result.stderr, 1, str(path), "4000x4000", "GiB of memory")


# -- 8: special files ---------------------------------------------------------------------------------------------
def test_fifo_and_device_links_are_refused_without_reading(tmp_path: Path, case_file: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    # In a subprocess with little memory and a timeout: before the fix one hung and the other read for ever.
    result = run_cli("detect", str(fifo), str(zero), limit=("address-space", 2**30), timeout=90)
    assert_clean(result.returncode, result.stdout, result.stderr, 1, "named pipe (FIFO), not a regular file",
                 "/dev/zero: is a character device")
    code, out, err = cli(capsys, "case", "add-evidence", str(case_file), str(fifo))
    assert_clean(code, out, err, 2, str(fifo), "not a regular file")


# -- 9: read-only case ------------------------------------------------------------------------------------------
def test_read_only_case_says_so_and_can_still_be_verified(case_file: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with read_only(case_file):
        assert_clean(*cli(capsys, "verify", str(case_file)), 2, str(case_file), "read-only", "--no-record")
        assert_clean(*cli(capsys, "decide", str(case_file), "1", "1", "excluded"), 2, "read-only")
        assert_clean(*cli(capsys, "verify", "--no-record", str(case_file)), 0)


# -- kill -9 mid-write ------------------------------------------------------------------------------------------
_DECIDER = textwrap.dedent("""
    import sys
    from forensic_face.store import CaseStore
    store = CaseStore.open(sys.argv[1])
    print("ready", flush=True)
    k = 0
    while True:
        store.set_decision(1, 1 + k % 3, ("possible lead", "excluded", "inconclusive")[k % 3], "why " * 200)
        k += 1
""")


def test_case_killed_mid_write_opens_and_verifies(case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _DECIDER, str(case_file)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with CaseStore.open(case_file) as store:
        assert store.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        decisions = [e for e in store.audit_entries() if e.action == "decision"]
        assert decisions  # it was writing when it was killed
    code, out, err = cli(capsys, "verify", str(case_file))
    assert_clean(code, out, err, 0, "intact")


# -- 11: invalid UTF-8 in text options ----------------------------------------------------------------------------
def test_invalid_utf8_note_examiner_and_evidence_name_are_bad_values(case_file: Path, tmp_path: Path) -> None:
    for option in ("--note", "--examiner"):
        result = run_cli("decide", str(case_file), "1", "1", "excluded", option.encode(), b"caf\xe9 \xff")
        assert_clean(result.returncode, result.stdout, result.stderr, 2, option, "not valid UTF-8", "\\xe9")
    evidence = write_image(tmp_path / os.fsdecode(b"caf\xe9.png"))
    result = run_cli("case", "add-evidence", str(case_file), os.fsencode(evidence))
    assert_clean(result.returncode, result.stdout, result.stderr, 2, "caf\\xe9.png", "is not valid UTF-8")


# -- 12: option values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "fragment"), [
    (("search", "p.jpg", "--gallery", "g", "--box", "nan,nan,nan,nan"), "--box must be 4 finite numbers"),
    (("search", "p.jpg", "--gallery", "g", "--box", "inf,0,5,5"), "--box must be 4 finite numbers"),
    (("search", "p.jpg", "--gallery", "g", "--box", "0,0,1e30,1e30"), "lies outside any image"),
    (("search", "p.jpg", "--gallery", "g", "--box", "10,10,5,20"), "x2 > x1"),
    (("search-video", "v.mp4", "--gallery", "g", "--stride", "0"), "--stride: expected a whole number of 1 or more"),
    (("search-video", "v.mp4", "--gallery", "g", "--stride", "-1"), "--stride: expected a whole number of 1"),
    (("search-video", "v.mp4", "--gallery", "g", "--start", "nan"), "--start: expected a finite number"),
    (("search-video", "v.mp4", "--gallery", "g", "--start", "-5"), "--start: expected a time of 0 seconds or more"),
    (("search-video", "v.mp4", "--gallery", "g", "--start", "5", "--end", "2"), "--end 2 must be later"),
])
def test_bad_option_values_are_refused_with_a_message(args: tuple[str, ...], fragment: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *args)
    assert_clean(code, out, err, 2, fragment)
    assert "SHA-256" not in err  # a bad value is not reported as a changed file


# -- 13: settings -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("content", "fragments"), [
    (b"engine = 5", ("[engine] engine = 5", "expected a table")),
    (b'[engine]\nbatch_size = "abc"', ("batch_size = 'abc'", "a whole number of at least 1")),
    (b"[engine]\nbatch_size = 2.5", ("batch_size = 2.5", "a whole number")),
    (b'[engine]\nscales = "2,4"', ("scales = '2,4'", "a list of whole numbers from 1 to 16")),
    (b"[engine]\nscales = [64]", ("scales", "from 1 to 16")),
    (b"[engine]\ndevice = 5", ("device = 5", "auto, cpu, cuda or cuda:N")),
    (b'[engine]\ndetector = "x"', ("detector = 'x'", "a table with min_face_px")),
    (b'[engine.detector]\nthresholds = "abc"', ("detector.thresholds = 'abc'", "a list of 3 numbers")),
    (b'[engine]\nseed = "x"', ("seed = 'x'", "a whole number")),
    (b'[engine]\nflip_test = "yes"', ("flip_test = 'yes'", "true or false")),
    (b"[engine]\nmax_blur_sigma = -1", ("max_blur_sigma = -1", "at least 0")),
    (b'[engine]\nbudget = "huge"', ("budget = 'huge'", "one of none, fast, standard, paper")),
    (b'[engine]\nfusion = "caf\xe9"', ("cannot be read as TOML (UTF-8 text)",)),
])
def test_bad_settings_name_the_file_the_key_and_what_is_allowed(
        content: bytes, fragments: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir()
    settings = tmp_path / "config" / "settings.toml"
    settings.write_bytes(content)
    assert_clean(*cli(capsys, "enroll", str(tmp_path / "gallery")), 2, str(settings), *fragments)


def test_unknown_detector_setting_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from forensic_face.settings import load_settings

    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    (tmp_path / "settings.toml").write_text("[engine.detector]\nmin_face_px = 20\nsharpness = 3\n")
    assert load_settings().detector.min_face_px == 20
    assert "detector.sharpness" in caplog.text


def test_settings_file_that_is_a_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(tmp_path))
    (tmp_path / "settings.toml").mkdir()
    assert_clean(*cli(capsys, "enroll", str(tmp_path / "gallery")), 2, "settings.toml: is not a file")


@pytest.mark.parametrize("variable", ["FORENSIC_FACE_CONFIG_DIR", "FORENSIC_FACE_CACHE_DIR"])
def test_folder_variables_naming_a_file_are_reported(variable: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    regular = tmp_path / "not-a-folder"
    regular.write_text("x")
    monkeypatch.setenv(variable, str(regular))
    assert_clean(*cli(capsys, "enroll", str(tmp_path / "gallery")), 2, str(regular),
                 f"is not a folder; set {variable}")


def test_read_only_cache_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FORENSIC_FACE_CACHE_DIR", str(cache))
    with read_only(cache):
        assert_clean(*cli(capsys, "enroll", str(tmp_path / "gallery")), 2, str(cache), "not writable",
                     "FORENSIC_FACE_CACHE_DIR")


def test_damaged_weights_manifest_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.engine import weights
    from forensic_face.engine.errors import WeightsIntegrityError
    from forensic_face.faults import describe_failure

    for content in ('{"weights": {"face_sr_x2": ', '{"weights": ["face_sr_x2"]}', "\xff"):
        manifest = tmp_path / "manifest.json"
        manifest.write_bytes(content.encode("latin-1"))
        monkeypatch.setattr(weights, "MANIFEST_PATH", manifest)
        weights._manifest.cache_clear()
        with pytest.raises(WeightsIntegrityError) as info:
            weights.verified_path("face_sr_x2")
        assert f"the weights manifest {manifest}" in str(info.value)
        assert describe_failure(info.value) == str(info.value)
    weights._manifest.cache_clear()


# -- 15: terminal output, matplotlib, leading '-' -----------------------------------------------------------------
def test_notes_and_file_names_cannot_send_escapes_or_forge_lines(case_file: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    note = "ok\x1b]0;owned\x07\x1b[2J\nsearch #1, rank 2 (Bob_B): excluded by Someone Else"
    code, out, err = cli(capsys, "decide", str(case_file), "1", "1", "excluded", "--note", note)
    assert_clean(code, out, err, 0, "\\x1b]0;owned\\x07\\x1b[2J\\nsearch #1")
    assert "\x1b" not in out and len(out.splitlines()) == 1
    forged = tmp_path / "evil\nprobe.png: face 1: box [1.0, 2.0, 3.0, 4.0] score 0.999"
    forged.write_bytes(b"not an image")
    code, out, err = cli(capsys, "detect", str(forged))
    assert_clean(code, out, err, 1, "evil\\nprobe.png", "is not an image")
    assert len(out.splitlines()) == 1


def test_file_names_starting_with_a_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("-x.jpg").write_bytes(b"not an image")
    code, out, err = cli(capsys, "detect", "-x.jpg")
    assert_clean(code, out, err, 2, "-x.jpg was read as an option", "after '--'", "./-x.jpg")
    assert_clean(*cli(capsys, "detect", "--", "-x.jpg"), 1, "-x.jpg: ERROR", "is not an image")


def test_matplotlib_writes_inside_the_cache_folder_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _env(HOME=str(home), FORENSIC_FACE_CACHE_DIR=str(tmp_path / "cache"))
    for variable in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env.pop(variable, None)
    script = ("import sys; from forensic_face.cli import main; code = main(sys.argv[1:]); "
              "import matplotlib.pyplot as plt; plt.figure().savefig(sys.argv[3] + '.png'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, "case", "new", str(tmp_path / "c.ffcase"), "--number", "1",
                           "--examiner", "E"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert_clean(done.returncode, done.stdout, done.stderr, 0)
    assert not (home / ".cache").exists() and not (home / ".config").exists()
    assert (tmp_path / "cache" / "matplotlib").is_dir() and (tmp_path / "c.ffcase.png").is_file()


# -- fuzz: mutated stills, hostile names, damaged videos --------------------------------------------------------
def test_mutated_stills_fail_cleanly(tmp_path: Path, case_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = mutated_images(tmp_path / "mutated", np.random.default_rng(34), 24)
    refused = 0
    for path in paths:
        code, out, err = cli(capsys, "case", "add-evidence", str(case_file), "--", str(path))
        assert "Traceback" not in err and code in (0, 2), (path, code, err)
        if code == 2:
            refused += 1
            assert f"error: {path}: " in err, err
        if "empty" in path.name:
            assert code == 2 and "empty" in err
        if "huge" in path.name:
            assert code == 2 and "pixels" in err
    assert refused >= 12  # every truncated, empty and huge one at least
    code, out, err = cli(capsys, "detect", "--json", "--device", "cpu", "--", *map(str, paths))
    assert_clean(code, out, err, 1)
    records = json.loads(out)
    assert len(records) == len(paths)
    assert all(r["error"] or isinstance(r["faces"], list) for r in records)


def test_hostile_file_names_are_escaped_everywhere(tmp_path: Path, case_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    paths = hostile_name_images(tmp_path / "names", np.random.default_rng(15))
    code, out, err = cli(capsys, "detect", "--device", "cpu", "--", *map(str, paths))
    assert_clean(code, out, err, 0)
    assert len(out.splitlines()) >= len(paths)
    for text in (out, err):
        assert not any(ord(c) < 32 and c != "\n" or c in "\x7f\u202e" for c in text), text
    assert_clean(*cli(capsys, "case", "add-evidence", str(case_file), "--", *map(str, paths)), 0)
    code, out, err = cli(capsys, "case", "show", str(case_file))
    assert_clean(code, out, err, 0, "evil\\nprobe.png", "\\x1b]0;owned\\x07", "\\u202e")
    assert not any(ord(c) < 32 and c != "\n" or c in "\x7f\u202e" for c in out)


def test_damaged_videos_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = hostile_videos(tmp_path / "videos", np.random.default_rng(8))
    for video in videos:
        code, out, err = cli(capsys, "search-video", "--gallery", str(tmp_path / "gallery"), "--device", "cpu",
                             "--stride", "4", "--", str(video))
        assert_clean(code, out, err, 2)
        assert f"{video}" in err or "gallery" in err, err


def test_sqlite_failures_of_the_store_name_the_case_file(case_file: Path) -> None:
    """The store's write path: a failure SQLite reports inside a transaction is raised as the CaseStoreError
    with the real cause, not as the failed ROLLBACK after it."""
    from forensic_face.engine.errors import CaseStoreError

    with CaseStore.open(case_file) as store:
        with pytest.raises(CaseStoreError, match="read-only") as info, store._transaction() as conn:
            conn.execute("PRAGMA query_only = ON")
            try:
                conn.execute("INSERT INTO decisions (search_id, rank, decision, note, examiner, utc) "
                             "VALUES (1, 1, 'excluded', '', 'x', 'now')")
            finally:
                conn.execute("PRAGMA query_only = OFF")
        assert str(case_file) in str(info.value)
        assert isinstance(info.value.__context__, sqlite3.OperationalError)


# -- the window's jobs: the same boundary ---------------------------------------------------------------------
def test_window_jobs_show_machine_faults_as_a_message(qtbot, case_file: Path) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.gui.worker import EngineHolder, JobRunner

    runner = JobRunner(EngineHolder(EngineConfig(device="cpu"), factory=lambda config: config))

    def decide(engine, progress, cancel):  # type: ignore[no-untyped-def]
        with CaseStore.open(case_file) as store:
            store.set_decision(1, 1, "excluded")

    def out_of_memory(engine, progress, cancel):  # type: ignore[no-untyped-def]
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 8589934592 bytes. Error code 12")

    with read_only(case_file):
        with qtbot.waitSignal(runner.failed, timeout=10_000) as blocker:
            assert runner.start("decide", decide, needs_engine=False)
    assert str(case_file) in blocker.args[1] and "read-only" in blocker.args[1]
    assert "Unexpected error" not in blocker.args[1]
    qtbot.waitUntil(lambda: not runner.busy)
    with qtbot.waitSignal(runner.failed, timeout=10_000) as blocker:
        assert runner.start("search", out_of_memory, needs_engine=False)
    assert blocker.args[1].startswith("not enough memory to finish")
    qtbot.waitUntil(lambda: not runner.busy)


def test_window_opens_with_defaults_when_the_settings_folder_is_a_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.gui.app import startup_config

    regular = tmp_path / "config-file"
    regular.write_text("x")
    monkeypatch.setenv("FORENSIC_FACE_CONFIG_DIR", str(regular))
    config, problem = startup_config()
    assert config == EngineConfig()
    assert str(regular) in problem and "FORENSIC_FACE_CONFIG_DIR" in problem
