"""Command-line interface. Each subcommand is a class; ``main`` only dispatches.

Results go to stdout (``--json`` gives one JSON document), progress and messages to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from forensic_face import __version__
from forensic_face.engine.errors import ForensicFaceError, ImageLoadError, NoFaceDetected

log = logging.getLogger("forensic_face")


class Command(Protocol):
    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Progress:
    """tqdm progress bar on stderr driven by the engine's (done, total, message) callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True)
        self.bar.set_description(message[:40])
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Engine settings shared by search-like commands; unset flags keep the user's saved settings."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device (default: auto)")
    parser.add_argument("--budget", choices=["none", "fast", "standard", "paper"],
                        help="gallery degradation budget: none, fast (11 paths), standard, paper (all 1,463)")
    parser.add_argument("--scales", help="comma-separated probe magnifications, e.g. 2,4,8")
    parser.add_argument("--hypotheses", type=int, help="blur hypotheses per scale (paper: 16)")
    parser.add_argument("--fusion", help="fusion, e.g. S_add,S_add (default), S_max,S_add (the paper's), T_add, T_concat")
    parser.add_argument("--upsampler", help="probe upsampler: face-sr or bicubic")
    parser.add_argument("--recognizer", help="face recognizer, e.g. dlib-resnet")
    parser.add_argument("--recognizer-model", help="model file for recognizers that need one")
    parser.add_argument("--no-resolution-matching", action="store_true",
                        help="compare gallery hypotheses at their own size (ablation)")
    parser.add_argument("--batch-size", type=int, help="images per batch on the device")
    parser.add_argument("--seed", type=int, help="seed of every random choice (default 0)")


def engine_config_from_args(args: argparse.Namespace) -> Any:
    from forensic_face.engine.errors import ConfigError
    from forensic_face.settings import load_settings

    config = load_settings()
    changes: dict[str, Any] = {}
    for flag, field in (("device", "device"), ("budget", "budget"), ("fusion", "fusion"),
                        ("upsampler", "upsampler"), ("recognizer", "recognizer"),
                        ("recognizer_model", "recognizer_model_path"), ("batch_size", "batch_size"),
                        ("seed", "seed"), ("hypotheses", "num_blur_hypotheses")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[field] = value
    if getattr(args, "scales", None):
        try:
            changes["scales"] = tuple(int(s) for s in args.scales.split(","))
        except ValueError:
            raise ConfigError(f"--scales must be integers separated by commas, got {args.scales!r}") from None
    if getattr(args, "no_resolution_matching", False):
        changes["resolution_matching"] = False
    if getattr(args, "top", None):
        changes["top_k"] = args.top
    return config.replace(**changes)


def _parse_box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--box must be x1,y1,x2,y2 in pixels, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box must have 4 numbers x1,y1,x2,y2, got {text!r}")
    return values


class DetectCommand:
    name = "detect"
    help = "list the faces in images (box, score, landmarks)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", nargs="+", type=Path, help="image files")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--min-face", type=int, default=12, help="smallest face width to find, in pixels")

    def run(self, args: argparse.Namespace) -> int:
        import dataclasses

        from forensic_face.engine.config import DetectorConfig, EngineConfig
        from forensic_face.engine.search import Engine
        from forensic_face.imaging import load_image

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
                if record["error"]:
                    print(f"{path}: ERROR {record['error']}")
                elif not record["faces"]:
                    print(f"{path}: no face detected")
                else:
                    for k, face in enumerate(record["faces"], start=1):
                        box = ", ".join(f"{v:.1f}" for v in face["box"])
                        print(f"{path}: face {k}: box [{box}] score {face['score']:.3f}")
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
        from forensic_face.engine.search import Engine

        engine = Engine(engine_config_from_args(args))
        bar = _Progress(sys.stderr.isatty())
        try:
            gallery = engine.enroll(args.gallery, progress=bar)
        finally:
            bar.close()
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
            print(f"{gallery.root}: {len(gallery.entries)} portraits of {len(set(gallery.identities))} identities")
            for e in gallery.entries:
                if e.note:
                    print(f"  note: {e.image_path}: {e.note}")
            for p in gallery.problems:
                print(f"  problem: {p.image_path}: {p.reason}")
        return 0


def search_probes(
    args: argparse.Namespace, engine: Any,
    search: Callable[[Any, Any, _Progress], tuple[Any, dict[str, Any]]],
) -> int:
    """The per-probe loop shared by ``search`` and ``search-large``: load each probe (with ``--box`` when given),
    run ``search(probe, face, progress) -> (SearchResult, extra record fields)``, add likelihood ratios, report
    each failure without stopping the batch, print text or one JSON document. Exit 1 if any probe failed."""
    from forensic_face.engine.detect import manual_face
    from forensic_face.imaging import load_image

    records: list[dict[str, Any]] = []
    failed = 0
    bar = _Progress(sys.stderr.isatty())
    for path in args.probes:
        record: dict[str, Any] = {"probe": str(path), "sha256": None, "face": None, "error": None,
                                  "candidates": [], "calibration": None}
        try:
            probe = load_image(path)
            record["sha256"] = probe.sha256
            face = manual_face(probe.pixels, args.box, engine.detector) if args.box else None
            result, extra = search(probe, face, bar)
            record = result.to_json(top=args.top)
            _add_likelihood_ratios(record, result)
            record.update(extra)
        except (ImageLoadError, NoFaceDetected) as exc:
            failed += 1
            record["error"] = str(exc)
        finally:
            bar.close()
        records.append(record)
        if not args.json:
            SearchCommand.print_record(record)
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failed else 0


class SearchCommand:
    name = "search"
    help = "rank a gallery for each probe still (Meet-in-the-middle)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("probes", nargs="+", type=Path, help="probe stills")
        parser.add_argument("--gallery", type=Path, required=True, help="gallery folder")
        parser.add_argument("--top", type=int, default=20, help="candidates to list per probe")
        parser.add_argument("--box", type=_parse_box, help="face box x1,y1,x2,y2 drawn by hand (one probe)")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        add_engine_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.engine.search import Engine

        if args.box is not None and len(args.probes) != 1:
            raise ForensicFaceError("--box applies to one probe; give a single probe image with it")
        engine = Engine(engine_config_from_args(args))
        bar = _Progress(sys.stderr.isatty())
        try:
            gallery = engine.enroll(args.gallery, progress=bar)
        finally:
            bar.close()
        for problem in gallery.problems:
            log.warning("gallery: %s: %s", problem.image_path, problem.reason)
        return search_probes(args, engine, lambda probe, face, bar: (
            engine.search(probe, gallery, face=face, progress=bar), {}))

    @staticmethod
    def print_record(record: dict[str, Any]) -> None:
        print(f"== {record['probe']}")
        if record["error"]:
            print(f"   ERROR: {record['error']}")
            return
        print("   Candidates are investigative leads for human review, not identifications.")
        from forensic_face.calibration import format_lr

        cal = record.get("calibration")
        for c in record["candidates"]:
            lr = "" if c.get("lr") is None else f"  LR {format_lr(c['lr'])} ({c['verbal']})"
            print(f"   {c['rank']:>3}  {c['score']:+.4f}  {c['identity']}  ({c['image']}){lr}")
        if cal is None:
            print("   No calibration for these settings: scores rank candidates, they are not likelihood ratios.")
        else:
            print(f"   LRs: {cal['band_px']} px calibration (held-out Cllr {cal['cllr']:.3f}). {cal['caveat']}")
        if record.get("shortlist"):
            sl = record["shortlist"]
            print(f"   (Meet-in-the-middle on a shortlist of {sl['k']} of {sl['index_rows']} indexed "
                  f"portraits' identities; identities outside it were not compared in full)")


def _add_likelihood_ratios(record: dict[str, Any], result: Any) -> None:
    """Add ``lr``/``log10_lr``/``verbal`` to each candidate of ``record`` and a ``calibration`` summary, from the
    shipped calibration matching the search's settings and face width; all ``None`` when none matches."""
    from forensic_face.calibration import CALIBRATION_CAVEAT, calibration_for_result, lr_record

    cal = calibration_for_result(result)
    for c in record["candidates"]:
        c.update(lr_record(cal, c["score"]))
    record["calibration"] = None if cal is None else {
        "band_px": cal.band_px, "cllr": round(cal.cllr, 4), "cllr_min": round(cal.cllr_min, 4),
        "conditions": cal.conditions, "caveat": CALIBRATION_CAVEAT}


def _commands() -> list[Command]:
    from forensic_face.calibration_cli import CalibrateCommand
    from forensic_face.case_cli import CaseCommand, ReplayCommand, ReportCommand, VerifyCommand
    from forensic_face.eval.eval_cli import EvalCommand, EvalCompareCommand, EvalDecomposeCommand
    from forensic_face.shortlist_cli import IndexCommand, ShortlistSearchCommand
    from forensic_face.training.sr_cli import EvalSrCommand, TrainRecognizerCommand, TrainSrCommand

    return [DetectCommand(), EnrollCommand(), SearchCommand(), CaseCommand(), VerifyCommand(), ReplayCommand(),
            ReportCommand(), EvalCommand(), EvalCompareCommand(), EvalDecomposeCommand(), TrainSrCommand(), EvalSrCommand(), TrainRecognizerCommand(), IndexCommand(),
            ShortlistSearchCommand(), CalibrateCommand()]


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forensic-face", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"forensic-face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands:
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    commands = _commands()
    args = build_parser(commands).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    command = next(c for c in commands if c.name == args.command)
    try:
        return command.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): not an error of ours; keep Python quiet at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ForensicFaceError as exc:
        print(f"forensic-face {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
