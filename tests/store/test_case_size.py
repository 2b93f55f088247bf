"""Issue 33 (case size): stored images are content-addressed (one ``blobs`` row per distinct image, however many
searches show it), older cases keep working, a damaged stored image is found, and reports embed images at the
size and in the encoding they are shown in."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
from tests.store.test_integrity import _downgrade, tamper, verify_cli
from tests.store.test_store import make_gallery, make_search_result, write_image

from forensic_face.engine.config import EngineConfig
from forensic_face.report.pdf import write_case_report
from forensic_face.store import CaseStore
from forensic_face.store.blobs import BLOB_COLUMNS
from forensic_face.store.records import StoredSearch


def _blob_count(path: Path) -> int:
    raw = sqlite3.connect(path)
    try:
        return int(raw.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])
    finally:
        raw.close()


def _images(search: StoredSearch) -> list[np.ndarray]:
    """Every image and matrix a stored search shows, in a fixed order."""
    out = [search.probe_crop]
    out += [h.image for hyps in search.probe_hypotheses.values() for h in hyps]
    for stored in search.candidates:
        cand = stored.candidate
        out += [cand.best_probe_hypothesis.image, *(g.image for g in cand.best_gallery_hypotheses)]
        out += [stored.gallery_crop, *(cand.similarity[s] for s in sorted(cand.similarity))]
    return out


def _case_with_two_searches(tmp_path: Path) -> tuple[Path, int, int]:
    probe = write_image(tmp_path / "probe.png")
    gallery = make_gallery(tmp_path / "gallery")
    path = tmp_path / "c.ffcase"
    with CaseStore.create(path, "S1", "Size", "Ann Examiner") as store:
        store.add_evidence(probe, "probe")
        first = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
    after_first = _blob_count(path)
    with CaseStore.open(path) as store:
        second = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
    assert _blob_count(path) == after_first  # the re-search's images were all stored already
    return path, first, second


def test_an_image_shown_by_two_searches_is_stored_once_and_reads_back_the_same(tmp_path: Path) -> None:
    path, first, second = _case_with_two_searches(tmp_path)
    raw = sqlite3.connect(path)
    references = {
        str(value) for table, columns in BLOB_COLUMNS.items() for column in columns
        for (value,) in raw.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")}
    num_references = sum(raw.execute(f"SELECT COUNT({column}) FROM {table}").fetchone()[0]
                         for table, columns in BLOB_COLUMNS.items() for column in columns)
    raw.close()
    # One row per distinct image: the probe crop, the hypotheses record, the candidates' shared best hypothesis,
    # three gallery crops, their variants and similarity matrices; referenced twice as often as they are stored.
    assert _blob_count(path) == len(references) and num_references > 2 * len(references)
    with CaseStore.open(path) as store:
        one, two = store.search(first), store.search(second)
    assert len(_images(one)) == len(_images(two)) > 20
    for a, b in zip(_images(one), _images(two)):
        np.testing.assert_array_equal(a, b)
    assert [c.candidate.gallery_paths for c in one.candidates] == [c.candidate.gallery_paths for c in two.candidates]
    # Lossless: what was recorded is what reads back.
    recorded = make_search_result(tmp_path / "probe.png", make_gallery(tmp_path / "gallery"))
    np.testing.assert_array_equal(one.probe_crop, recorded.probe_crop.pixels)
    for scale, hyps in recorded.probe_hypotheses.items():
        for h, stored in zip(hyps, one.probe_hypotheses[scale]):
            np.testing.assert_array_equal(stored.image, h.image)
            assert stored.sigma == h.sigma


def test_a_case_of_schema_3_migrates_verifies_reads_and_stores_new_searches_once(
        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path, first, _ = _case_with_two_searches(tmp_path)
    old = tmp_path / "old.ffcase"
    _downgrade(path, old, 3)  # every image in its own row, as cases were written before
    raw = sqlite3.connect(old)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 3
    assert {r[0] for r in raw.execute("SELECT typeof(probe_hypotheses_npz) FROM searches")} == {"blob"}
    raw.close()
    code, text = verify_cli(old, capsys)  # opening it migrates it to schema 4
    assert code == 0, text
    with CaseStore.open(old) as store, CaseStore.open(path) as new:
        migrate = [e for e in store.audit_entries() if e.action == "migrate"]
        assert [(e.details["from"], e.details["to"]) for e in migrate] == [(3, 4)]
        migrated, written = store.search(first), new.search(first)
        for a, b in zip(_images(migrated), _images(written)):
            np.testing.assert_array_equal(a, b)
        assert [c.candidate.gallery_paths for c in migrated.candidates] == [
            c.candidate.gallery_paths for c in written.candidates] and written.candidates[0].candidate.gallery_paths
        gallery = make_gallery(tmp_path / "gallery")
        probe = tmp_path / "probe.png"
        third = store.record_search(make_search_result(probe, gallery), EngineConfig(), gallery=gallery)
        for a, b in zip(_images(store.search(third)), _images(new.search(first))):
            np.testing.assert_array_equal(a, b)
    raw = sqlite3.connect(old)
    # The old rows keep their bytes (never rewritten); the new search refers to blobs.
    kinds = raw.execute("SELECT id, typeof(probe_crop_png) FROM searches ORDER BY id").fetchall()
    assert kinds == [(1, "blob"), (2, "blob"), (third, "text")]
    raw.close()
    assert _blob_count(old) == _blob_count(path)
    code, text = verify_cli(old, capsys)
    assert code == 0, text


def test_an_edited_or_deleted_stored_image_is_found_by_verify(
        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = _case_with_two_searches(tmp_path)
    raw = sqlite3.connect(path)
    crop = raw.execute("SELECT probe_crop_png FROM searches WHERE id = 1").fetchone()[0]
    hypotheses = raw.execute("SELECT probe_hypotheses_npz FROM searches WHERE id = 1").fetchone()[0]
    raw.close()
    other = tmp_path / "other.png"
    write_image(other, size=12, seed=3)  # a valid PNG of the same size: it decodes, only the hashes tell
    tamper(path, f"UPDATE blobs SET data = ? WHERE sha256 = '{crop}'", params=(other.read_bytes(),))
    tamper(path, f"DELETE FROM blobs WHERE sha256 = '{hypotheses}'")
    code, text = verify_cli(path, capsys)
    assert code == 1
    assert f"stored image {crop} now holds bytes hashing to" in text
    assert f"blobs row sha256='{crop}' differs from what audit entry" in text
    assert f"searches row id=1: its probe_hypotheses_npz is stored image {hypotheses}, which is missing" in text
    assert f"blobs row sha256='{hypotheses}' (recorded by audit entry" in text and "is missing: deleted" in text


def test_report_embeds_the_probe_crop_losslessly_photographs_as_jpeg_and_no_ascii85(tmp_path: Path) -> None:
    path, first, _ = _case_with_two_searches(tmp_path)
    out = tmp_path / "one.pdf"
    write_case_report(path, out, search_ids=[first], check_galleries=False)
    data = out.read_bytes()
    assert b"ASCII85Decode" not in data  # binary streams: ASCII85 text is a quarter larger
    images = re.findall(rb"/Filter \[ /(\w+) \] /Height (\d+) /Length \d+ /Subtype /Image", data)
    filters = {(f.decode(), int(h)) for f, h in images}
    # The 12 px probe crop, native and enlarged by whole-pixel replication (x10 for 110 pt): lossless.
    assert ("FlateDecode", 12) in filters and ("FlateDecode", 120) in filters
    assert ("DCTDecode", 12) not in filters and ("DCTDecode", 120) not in filters
    # The gallery portraits (40 px crops) and enhanced hypotheses are JPEG.
    assert ("DCTDecode", 40) in filters
