"""``forensic-face detect``, ``enroll`` and ``search``: the method on one gallery folder, exhaustively."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forensic_face.cli.common import (
    ProgressBar,
    add_engine_arguments,
    add_examiner_argument,
    engine_config_from_args,
    enroll_with_progress,
    log,
    parse_box,
    positive_int,
    record_search_in_case,
    run_with_case,
    search_probes,
)
from forensic_face.engine import ForensicFaceError
from forensic_face.faults import printable


class DetectCommand:
    name = "detect"
    help = "list the faces in images (box, score, landmarks)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", nargs="+", type=Path, help="image files")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--min-face", type=positive_int, default=12, help="smallest face width to find, in pixels")

    def run(self, args: argparse.Namespace) -> int:
        import dataclasses

        from forensic_face.engine import DetectorConfig, Engine, EngineConfig, load_image

        config = EngineConfig(device=args.device, detector=dataclasses.replace(DetectorConfig(),
                                                                                  min_face_px=args.min_face))
        engine = Engine(config, cache_dir=None)
        records: list[dict[str, Any]] = []
        failed = 0
        for path in args.images:
            try:
                image = load_image(path)
                record = engine.detect(image).to_json()
                record["error"] = None
            except ForensicFaceError as exc:
                failed += 1
                record = {"image": str(path), "sha256": None, "faces": [], "error": str(exc)}
            records.append(record)
            if not args.json:
                shown = printable(path)
                if record["error"]:
                    print(f"{shown}: ERROR {printable(record['error'])}")
                elif not record["faces"]:
                    print(f"{shown}: no face detected")
                else:
                    for k, face in enumerate(record["faces"], start=1):
                        box = ", ".join(f"{v:.1f}" for v in face["box"])
                        print(f"{shown}: face {k}: box [{box}] score {face['score']:.3f}")
        if args.json:
            json.dump(records, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return 1 if failed else 0


class EnrollCommand:
    name = "enroll"
    help = "enroll a gallery folder and list the portraits that could not be used"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("gallery", type=Path, help="folder: one sub-folder per identity, or files named after them")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"])

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.engine import Engine

        engine = Engine(engine_config_from_args(args))
        gallery = enroll_with_progress(engine, args.gallery)
        if args.json:
            json.dump({
                "gallery": str(gallery.root),
                "identities": len(set(gallery.identities)),
                "entries": [{"identity": e.identity, "image": str(e.image_path), "sha256": e.sha256,
                             "box": [round(float(v), 2) for v in e.crop.face.box], "note": e.note}
                            for e in gallery.entries],
                "problems": [{"image": str(p.image_path), "reason": p.reason} for p in gallery.problems],
            }, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"{printable(gallery.root)}: {len(gallery.entries)} portraits of "
                  f"{len(set(gallery.identities))} identities")
            for e in gallery.entries:
                if e.note:
                    print(f"  note: {printable(e.image_path)}: {printable(e.note)}")
            for p in gallery.problems:
                print(f"  problem: {printable(p.image_path)}: {printable(p.reason)}")
        return 0


class SearchCommand:
    name = "search"
    help = "rank a gallery for each probe still (Meet-in-the-middle)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("probes", nargs="+", type=Path, help="probe stills")
        parser.add_argument("--gallery", type=Path, required=True, help="gallery folder")
        parser.add_argument("--top", type=positive_int, default=20, help="candidates to list per probe")
        parser.add_argument("--box", type=parse_box, help="face box x1,y1,x2,y2 drawn by hand (one probe)")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        parser.add_argument("--case", type=Path, default=None,
                            help="record every search in this case file, as the window does (probe imported as "
                                 "evidence, gallery, settings, candidates with their images, likelihood ratios; "
                                 "replayable and in the audit trail); create it with 'case new'")
        add_examiner_argument(parser, "the searches recorded with --case")
        add_engine_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return run_with_case(args, self._search)

    def _search(self, args: argparse.Namespace, store: Any) -> int:
        from forensic_face.engine import Engine

        if args.box is not None and len(args.probes) != 1:
            raise ForensicFaceError("--box applies to one probe; give a single probe image with it")
        engine = Engine(engine_config_from_args(args))
        gallery = enroll_with_progress(engine, args.gallery)
        for problem in gallery.problems:
            log.warning("gallery: %s: %s", problem.image_path, problem.reason)

        def search(probe: Any, face: Any, bar: ProgressBar) -> tuple[Any, dict[str, Any]]:
            result = engine.search(probe, gallery, face=face, progress=bar)
            return (result, {}) if store is None else record_search_in_case(store, engine, result, gallery)

        return search_probes(args, engine, search)
