"""How big a case file and its report grow: a realistic case searched as the window searches it.

Usage (CPU here; ``--device cuda`` on a GPU machine):

    .venv/bin/python benchmarks/bench_case_size.py [--gallery 30] [--probes 5] [--rounds 2] [--cheap]
                                                   [--work DIR]

Builds a case the way the window does: the first ``--gallery`` LFW-XRes people of ``peopleDevTest.txt`` (their
first portrait each) enrolled as the gallery, ``--probes`` 24 px probes of the same people (the protocol's
degradation, one per person) imported as evidence, then ``--rounds`` rounds of "Search all": every probe searched
with the engine, its gallery variants rendered (``Engine.with_gallery_images``) and recorded with
:meth:`CaseStore.record_search`, so two rounds of five probes are ten searches and every probe is searched twice
with the same settings, as a re-search after a decision does. Settings: the shipped defaults (``EngineConfig()``),
or with ``--cheap`` scale 2, one blur hypothesis and no gallery degradation (a quick run; its images are
smaller, so its sizes are not the default's).

Prints the case file's size (after the WAL checkpoint of closing it), the bytes of each table's stored images and
matrices, and the sizes of two reports: one search (the first probe's first search) and the whole case. ``--work``
keeps the probes, the gallery links and the template cache between runs (a second run's searches are warm).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch

from forensic_face.engine.config import EngineConfig
from forensic_face.eval.protocol import LfwImage, ProbeSpec, XResSplit, lfw_xres_split, materialize_probes
from forensic_face.eval.runner import build_gallery_folder
from forensic_face.paths import lfw_dir
from forensic_face.report.pdf import write_case_report
from forensic_face.store.case_store import CaseStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import detected_probes  # noqa: E402  (benchmarks are scripts, not a package)

MB = 1e6


def stored_bytes(case_path: Path) -> dict[str, int]:
    """Bytes of every BLOB value per ``table.column`` (the images and matrices a case stores)."""
    conn = sqlite3.connect(case_path)
    out: dict[str, int] = {}
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]:
                total = conn.execute(f'SELECT SUM(LENGTH("{column}")) FROM {table} '
                                     f'WHERE typeof("{column}") = \'blob\'').fetchone()[0]
                if total:
                    out[f"{table}.{column}"] = int(total)
    finally:
        conn.close()
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def build_case(work: Path, config: EngineConfig, num_gallery: int, num_probes: int, rounds: int
               ) -> tuple[Path, list[int], float]:
    """The case of the module docstring; returns its path, the search ids in order and the seconds searched."""
    from forensic_face.engine import Engine

    full = lfw_xres_split(lfw_dir(), subset=num_gallery)
    # One probe per person (the first probe image of each of the first ``num_probes`` people).
    first_probe: dict[str, LfwImage] = {}
    for image in full.probes:
        first_probe.setdefault(image.identity, image)
    split = XResSplit(full.gallery, tuple(first_probe.values())[:num_probes], full.people_list)
    records = materialize_probes(split, ProbeSpec(width_px=24, face_width_source="nominal"), work / "probes",
                                 known_faces=None)
    gallery_dir = build_gallery_folder(split, work / f"gallery{num_gallery}")
    engine = Engine(config, cache_dir=work / "engine-cache")
    gallery = engine.enroll(gallery_dir)
    probes = detected_probes(engine, records)
    case_path = work / f"case-{time.strftime('%Y%m%d-%H%M%S')}.ffcase"
    search_ids: list[int] = []
    seconds = 0.0
    with CaseStore.create(case_path, "BENCH-1", "Case size benchmark", "Bench Examiner") as store:
        for loaded, _ in probes:
            store.add_evidence(loaded.path, "probe")
        for _ in range(rounds):
            for loaded, face in probes:
                t0 = time.perf_counter()
                result = engine.with_gallery_images(engine.search(loaded, gallery, face=face), gallery)
                seconds += time.perf_counter() - t0
                search_ids.append(store.record_search(result, config, gallery=gallery))
                print(f"  search #{search_ids[-1]} of {loaded.path.name} recorded", file=sys.stderr, flush=True)
    return case_path, search_ids, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=int, default=30)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cheap", action="store_true", help="scale 2, one hypothesis, no gallery degradation")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="keep probes, gallery links and template cache here")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    config = (EngineConfig(device=args.device, scales=(2,), num_blur_hypotheses=1, budget="none") if args.cheap
              else EngineConfig(device=args.device))
    print(f"config: scales={config.scales} hypotheses={config.num_blur_hypotheses} budget={config.budget} "
          f"top_k={config.top_k} recognizer={config.recognizer} upsampler={config.upsampler}")
    with tempfile.TemporaryDirectory(prefix="bench_case_size_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        case_path, search_ids, seconds = build_case(work, config, args.gallery, args.probes, args.rounds)
        one = work / f"{case_path.stem}-report-one-search.pdf"
        whole = work / f"{case_path.stem}-report-whole-case.pdf"
        one_outcome = write_case_report(case_path, one, search_ids=search_ids[:1], check_galleries=False)
        whole_outcome = write_case_report(case_path, whole, check_galleries=False)
        print(f"{len(search_ids)} searches of {args.probes} probes against {args.gallery} identities "
              f"({seconds:.1f} s searching)")
        print(f"case file: {case_path.stat().st_size / MB:.2f} MB")
        for name, size in stored_bytes(case_path).items():
            print(f"  {name:<40} {size / MB:8.2f} MB")
        print(f"report of one search: {one.stat().st_size / MB:.2f} MB, {one_outcome.num_pages} pages")
        print(f"report of the case ({len(search_ids)} searches, latest per probe): "
              f"{whole.stat().st_size / MB:.2f} MB, {whole_outcome.num_pages} pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
