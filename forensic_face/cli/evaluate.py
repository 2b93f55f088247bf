"""``forensic-face eval``, ``eval-compare`` and ``eval-decompose``: the LFW-XRes benchmark, the Table 2 ablation,
McNemar comparisons of two runs and the error decomposition."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from forensic_face.cli.common import ProgressBar, add_setting_arguments, settings_from_args
from forensic_face.engine import BUDGETS, ConfigError, EngineConfig
from forensic_face.eval.protocol import (
    DEFAULT_PROBE_WIDTH_PX,
    PROBE_WIDTHS_PX,
    PROTOCOL_NAME,
)

log = logging.getLogger(__name__)

#: The user settings ``eval`` takes as flags, as the search commands word them (its other engine flags have the
#: benchmark's defaults).
EVAL_SETTINGS = ("ensemble_rule", "ensemble_weights", "ensemble_flip_test", "precision", "flip_test")


class EvalCommand:
    """Benchmark the engine on LFW-XRes (rank-1/5/10, CMC, scores for calibration, optional ablation)."""

    name = "eval"
    help = "benchmark identification on LFW-XRes (cross-resolution), optionally the paper's Table 2 ablation"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--protocol", choices=[PROTOCOL_NAME], default=PROTOCOL_NAME)
        parser.add_argument("--width", type=int, choices=PROBE_WIDTHS_PX, default=DEFAULT_PROBE_WIDTH_PX,
                            help="probe face width in pixels (default 24, like SCFace d1)")
        parser.add_argument("--subset", type=int, default=None, metavar="N", help="only the first N people")
        parser.add_argument("--budget", choices=list(BUDGETS), default="standard",
                            help="gallery degradation budget (of the full method and the ablation's gallery rows)")
        parser.add_argument("--upsampler", default=EngineConfig().upsampler,
                            help=f"super-resolution of the probes (default: the engine's, {EngineConfig().upsampler})")
        parser.add_argument("--recognizer", default=EngineConfig().recognizer,
                            help=f"face recognizer (default: the engine's, {EngineConfig().recognizer})")
        parser.add_argument("--recognizer-model", default=None,
                            help="model file for the recognizer (e.g. a train-recognizer run's export)")
        add_setting_arguments(parser, EVAL_SETTINGS, defaults={"flip_test": "on" if EngineConfig().flip_test else "off"})
        parser.add_argument("--scales", default=None,
                            help="comma list of magnifications for a single run, e.g. 2 or 2,4,8 (default: the engine's)")
        parser.add_argument("--hypotheses", type=int, default=EngineConfig().num_blur_hypotheses,
                            help=f"blur hypotheses per scale (default: the engine's, {EngineConfig().num_blur_hypotheses})")
        parser.add_argument("--fusion", default=None, help=f"fusion of a single run (default: the engine's, {EngineConfig().fusion})")
        parser.add_argument("--ablation", action="store_true", help="run the rows of the paper's Table 2")
        parser.add_argument("--rows", default=None,
                            help="comma list of ablation rows to run (e.g. baseline,final); default all")
        parser.add_argument("--out", type=Path, default=Path("eval-out"), help="output folder")
        parser.add_argument("--doc", type=Path, default=None,
                            help="also write a results document here (e.g. docs/results.md) with its CMC PNG beside it")
        parser.add_argument("--fallback-known-face", action="store_true",
                            help="when detection fails on a probe, use the known face position instead of a miss")
        parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
        parser.add_argument("--seed", type=int, default=0, help="protocol and engine seed")
        parser.add_argument("--camera", choices=["fixed", "sampled", "clean"], default="fixed",
                            help="fixed: the benchmark's camera setting; sampled: one drawn per probe from its seed; "
                                 "clean: area downsampling only (the error decomposition's oracle probe)")
        parser.add_argument("--oracle-landmarks", action="store_true",
                            help="error decomposition: search every probe at its known face position with the "
                                 "full-resolution landmarks scaled down, instead of what the detector finds")
        parser.add_argument("--face-width-source", choices=["mtcnn", "nominal"], default="mtcnn",
                            help="measure each original's face width with MTCNN (default) or assume the nominal 92.6 px")
        parser.add_argument("--cached-only", action="store_true",
                            help="search nothing: score the probes a stopped run of the same settings already "
                                 "searched (the others are left out and counted as not-searched)")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machines)")
        parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: $FORENSIC_FACE_DATA/lfw)")
        parser.add_argument("--cache-dir", type=Path, default=None,
                            help="benchmark cache (default: <user cache>/eval); the engine keeps its own cache")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from forensic_face.engine import Engine
        from forensic_face.eval.ablation import (
            AblationRow,
            RowOutcome,
            ablation_rows,
            code_version,
            run_ablation,
            select_rows,
        )
        from forensic_face.eval.runner import EvalSettings, evaluate, prepare, write_run
        from forensic_face.paths import cache_dir, lfw_dir

        if args.cached_only and args.ablation:
            raise ConfigError("--cached-only summarises one stopped run; run it without --ablation, with that run's "
                              "settings")
        torch.set_num_threads(max(1, args.threads))
        started = time.perf_counter()
        # The code as it was when the run started: commits made while a long run goes on do not describe it.
        code = code_version()
        settings = EvalSettings(
            lfw_root=args.lfw or lfw_dir(), cache_dir=args.cache_dir or cache_dir() / "eval", width_px=args.width,
            subset=args.subset, seed=args.seed, camera=args.camera, face_width_source=args.face_width_source,
            fallback_known_face=args.fallback_known_face, oracle_landmarks=args.oracle_landmarks,
        )
        # top_k=1: the benchmark reads SearchResult.ranking (every identity); rendering the display images of
        # 20 candidates per probe would only cost time. Scores and rankings do not depend on top_k.
        changes: dict[str, Any] = {"device": args.device, "seed": args.seed, "budget": args.budget,
                                   "upsampler": args.upsampler, "num_blur_hypotheses": args.hypotheses,
                                   "recognizer": args.recognizer, "recognizer_model_path": args.recognizer_model,
                                   "top_k": 1, **settings_from_args(args, EVAL_SETTINGS)}
        if args.batch_size:
            changes["batch_size"] = args.batch_size
        base = EngineConfig().replace(**changes)
        single = base
        if args.scales:
            single = single.replace(scales=tuple(int(s) for s in args.scales.split(",")))
        if args.fusion:
            single = single.replace(fusion=args.fusion)
        rows = (select_rows(ablation_rows(base, args.upsampler, args.budget, args.hypotheses), args.rows)
                if args.ablation else [AblationRow("run", "Run", "-", single)])
        first = Engine(rows[0].config)
        prepared = prepare(first, settings, progress=ProgressBar())
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        if args.ablation:
            engines = {rows[0].config.digest(): first}

            def make_engine(config: EngineConfig) -> Engine:
                return engines.pop(config.digest(), None) or Engine(config)

            def write_partial(done: list[RowOutcome]) -> None:
                # Keep the document current after every row, so a stopped run still leaves its results.
                self._write_doc(args, done, [r.key for r in rows[len(done):]], settings, prepared, out,
                                time.perf_counter() - started, first, code)

            outcomes = run_ablation(rows, prepared, make_engine, out,
                                    progress_for=lambda row: ProgressBar(f"{row.key} "),
                                    after_row=write_partial)
        else:
            t0 = time.perf_counter()
            result = evaluate(first, prepared, label="run", progress=ProgressBar(), cached_only=args.cached_only)
            write_run(result, out)
            outcomes = [RowOutcome(rows[0], result, wall_s=time.perf_counter() - t0)]
        wall_s = time.perf_counter() - started
        doc = self._write_doc(args, outcomes, [], settings, prepared, out, wall_s, first, code)
        for o in outcomes:
            if o.result is not None:
                r = o.result.rates()
                sys.stderr.write(f"{o.row.key:>14}: rank-1 {100 * r['rank1']:.2f}%  rank-5 {100 * r['rank5']:.2f}%  "
                                 f"rank-10 {100 * r['rank10']:.2f}%  ({o.wall_s:.0f} s)\n")
            else:
                sys.stderr.write(f"{o.row.key:>14}: FAILED {o.error}\n")
        sys.stderr.write(f"wrote {doc} and {out}/ in {wall_s / 60:.1f} min\n")
        return 0 if any(o.result is not None for o in outcomes) else 1

    def _write_doc(self, args: argparse.Namespace, outcomes: list[Any], pending: list[str], settings: Any,
                   prepared: Any, out: Path, wall_s: float, engine: Any, code: str) -> Path:
        """results.md (at ``--doc`` or in ``--out``), the CMC plot beside it, and machine.json."""
        from forensic_face.eval.ablation import (
            machine_info,
            plot_ablation_cmc,
            write_results_doc,
        )

        machine = machine_info(str(engine.device), code=code)
        (out / "machine.json").write_text(json.dumps(machine | {"wall_s": round(wall_s, 1)}, indent=2))
        argv = sys.argv[1:]
        if argv and argv[0] == self.name:
            argv = argv[1:]
        argv = pinned_argv(pinned_argv(argv, "--upsampler", args.upsampler), "--recognizer", args.recognizer)
        argv = pinned_argv(argv, "--flip-test", args.flip_test)
        command = "forensic-face eval " + shlex.join(argv)
        full_argv = _drop_option(_drop_option(argv, "--subset"), "--rows")
        if "--ablation" not in full_argv:
            full_argv.append("--ablation")
        full_command = "forensic-face eval " + shlex.join(full_argv)
        doc_path: Path = args.doc or out / "results.md"
        # Several documents can share docs/ (e.g. a face-sr run beside results.md): each gets its own plot;
        # results.md keeps the plain cmc_wNN.png name its committed copy links to.
        prefix = "" if doc_path.stem == "results" else f"{doc_path.stem}_"
        plot_path = doc_path.parent / f"{prefix}cmc_w{args.width}.png"
        cmc_png = plot_ablation_cmc(outcomes, plot_path,
                                    f"LFW-XRes, {args.width} px probe faces, {len(prepared.probes)} probes")
        return write_results_doc(doc_path, outcomes, settings, prepared, command, full_command, machine, wall_s,
                                 args.budget, cmc_png, pending=pending, upsampler=args.upsampler)


class EvalCompareCommand:
    """Paired rank-1 comparison of two benchmark runs on the same probes (McNemar's exact test)."""

    name = "eval-compare"
    help = "compare the rank-1 of two `forensic-face eval` runs on the same probes (McNemar's exact test)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_a", type=Path, help="run folder (with scores.npz) of the reference setting")
        parser.add_argument("run_b", type=Path, help="run folder of the setting compared with it")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON document")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.eval.compare import compare_rank1

        result = compare_rank1(args.run_a, args.run_b)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
            return 0
        print(f"probes: {result.num_probes}")
        print(f"rank-1 A: {100 * result.rank1_a:.2f} %  ({args.run_a})")
        print(f"rank-1 B: {100 * result.rank1_b:.2f} %  ({args.run_b})")
        print(f"found at rank 1 only by A: {result.only_a}; only by B: {result.only_b}")
        print(f"McNemar exact p (two-sided): {result.mcnemar_p:.3g}")
        return 0


def pinned_argv(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option value`` stated explicitly, so a documented command still reproduces the run after
    a default changes (e.g. the engine's default upsampler).

    >>> pinned_argv(["--width", "24", "--upsampler=bicubic"], "--upsampler", "bicubic")
    ['--width', '24', '--upsampler', 'bicubic']
    """
    return [*_drop_option(argv, option), option, value]


def _drop_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == option:
            skip = True
            continue
        if a.startswith(option + "="):
            continue
        out.append(a)
    return out


#: The error decomposition's variants: each swaps one stage of the probe side for its oracle.
DECOMPOSITION_VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("pipeline", "the product as it runs: surveillance camera, MTCNN on the probe", ()),
    ("no-detection-failure", "known face position where MTCNN misses the face", ("--fallback-known-face",)),
    ("oracle-landmarks", "every probe at its known face, full-resolution landmarks scaled down",
     ("--oracle-landmarks",)),
    ("clean-probe", "area downsampling only (no blur, noise, colour error, JPEG), MTCNN on the probe",
     ("--camera", "clean")),
    ("clean-probe+oracle-landmarks", "clean probe at its known face with exact landmarks",
     ("--camera", "clean", "--oracle-landmarks")),
)


class EvalDecomposeCommand:
    """Where rank-1 is lost: the same benchmark with one probe-side stage swapped for its oracle at a time."""

    name = "eval-decompose"
    help = ("error decomposition on LFW-XRes: rank-1 with the detector, the landmarks and the camera swapped for "
            "oracles one at a time")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("eval-decompose"), help="folder for the runs")
        parser.add_argument("--label", default="run", help="names this decomposition in the document")
        parser.add_argument("--doc", type=Path, default=None,
                            help="write the table into this document (e.g. docs/accuracy.md), between markers "
                                 "named by --label, so several decompositions (before/after) live side by side")
        parser.add_argument("--variants", default=",".join(v[0] for v in DECOMPOSITION_VARIANTS),
                            help="comma list of variants to run (default all)")
        parser.add_argument("eval_args", nargs=argparse.REMAINDER,
                            help="after --: options of `forensic-face eval` (recognizer, budget, scales, ...)")

    def run(self, args: argparse.Namespace) -> int:
        extra = [a for a in args.eval_args if a != "--"]
        if any(a in ("--out", "--doc", "--ablation", "--camera", "--oracle-landmarks", "--fallback-known-face")
               for a in extra):
            raise ConfigError("--out, --doc, --ablation and the oracle options are set by eval-decompose")
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        known = {v[0]: v for v in DECOMPOSITION_VARIANTS}
        unknown = [v for v in wanted if v not in known]
        if unknown:
            raise ConfigError(f"unknown variants {unknown}; known: {', '.join(known)}")
        eval_parser = argparse.ArgumentParser(prog="forensic-face eval")
        EvalCommand().add_arguments(eval_parser)
        rows = []
        for key in wanted:
            _, meaning, flags = known[key]
            out = args.out / key
            ns = eval_parser.parse_args([*extra, *flags, "--out", str(out)])
            status = EvalCommand().run(ns)
            if status != 0:
                sys.stderr.write(f"error: variant {key} failed (exit {status})\n")
                return status
            result = json.loads((out / "result.json").read_text())
            rows.append((key, meaning, result))
        lines = [f"Decomposition `{args.label}`: `forensic-face eval-decompose --label {args.label} -- "
                 f"{shlex.join(extra)}`", "",
                 "| variant | what is swapped for its oracle | rank-1 | rank-5 | rank-10 | probes | no face |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for key, meaning, result in rows:
            lines.append(f"| {key} | {meaning} | {100 * result['rank1']:.2f} | {100 * result['rank5']:.2f} | "
                         f"{100 * result['rank10']:.2f} | {result['num_probes']} | "
                         f"{result['counts'].get('no-face', 0)} |")
        config = rows[0][2]["config"] if rows else {}
        lines += ["", f"Engine: recognizer `{config.get('recognizer')}`, upsampler `{config.get('upsampler')}`, "
                      f"scales {config.get('scales')}, {config.get('num_blur_hypotheses')} hypotheses, budget "
                      f"`{config.get('budget')}`, fusion `{config.get('fusion')}`."]
        text = "\n".join(lines)
        sys.stdout.write(text + "\n")
        if args.doc is not None:
            from forensic_face.eval.markdown import replace_marked_block

            replace_marked_block(args.doc, f"decomposition:{args.label}", text)
        return 0


class EvalVideoCommand:
    """The LFW video protocol (``forensic_face.eval.video_protocol``): fused frames against the best one."""

    name = "eval-video"
    help = "video protocol on LFW: rank-1 of the best single frame against 3, 5 and 10 fused frames (McNemar)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--subset", type=int, default=None, help="only the first N people")
        parser.add_argument("--kind", choices=["stills", "walk"], default="stills",
                            help="stills: each frame searched at its known face, fusions compared (default); walk: "
                                 "a video of the person walking towards the camera (face 12 to 36 px), tracked as "
                                 "search-video does: frames per true track and rank-1 of track 1")
        parser.add_argument("--frames", type=int, default=None, help="frames per clip (default 10; walk: 24)")
        parser.add_argument("--stride", type=int, default=5, help="walk: track on every Nth frame (default 5)")
        parser.add_argument("--camera", choices=["sampled", "fixed"], default="sampled",
                            help="a camera drawn per frame (default) or the benchmark's fixed camera")
        parser.add_argument("--out", type=Path, required=True, help="output folder")
        parser.add_argument("--budget", choices=list(BUDGETS), default="fast")
        parser.add_argument("--scales", default=None, help="comma list of magnifications (default: the engine's)")
        parser.add_argument("--hypotheses", type=int, default=None,
                            help="blur hypotheses per scale (default: the engine's)")
        parser.add_argument("--recognizer", default=None)
        add_setting_arguments(parser, ["flip_test"])
        parser.add_argument("--upsampler", default=None)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--lfw", type=Path, default=None)

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from forensic_face.engine import Engine, parse_scales
        from forensic_face.eval.protocol import lfw_xres_split
        from forensic_face.eval.runner import build_gallery_folder
        from forensic_face.eval.video_protocol import (
            VideoProtocolSettings,
            WalkSettings,
            make_clips,
            run_video_protocol,
            run_walk_protocol,
            walk_settings_json,
        )
        from forensic_face.paths import lfw_dir

        if args.threads:
            torch.set_num_threads(args.threads)
        changes: dict[str, Any] = {"device": args.device, "seed": args.seed, "budget": args.budget, "top_k": 1}
        if args.hypotheses:
            changes["num_blur_hypotheses"] = args.hypotheses
        if args.scales:
            changes["scales"] = parse_scales(args.scales)
        if args.recognizer:
            changes["recognizer"] = args.recognizer
        if args.upsampler:
            changes["upsampler"] = args.upsampler
        changes.update(settings_from_args(args, ["flip_test"]))
        engine = Engine(EngineConfig().replace(**changes))
        split = lfw_xres_split(args.lfw or lfw_dir(), subset=args.subset)
        started = time.perf_counter()
        if args.kind == "walk":
            walk = WalkSettings(num_frames=args.frames or WalkSettings.num_frames, stride=args.stride, seed=args.seed)
            gallery = engine.enroll(build_gallery_folder(split, args.out / "gallery"))
            summary = run_walk_protocol(engine, gallery, split, walk, args.out, progress=ProgressBar("walk: "))
            summary.update({"settings": walk_settings_json(walk), "config": engine.config.to_dict(),
                            "wall_s": round(time.perf_counter() - started, 1)})
            (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
            print(json.dumps(summary, indent=2))
            return 0
        settings = VideoProtocolSettings(frames_per_clip=args.frames or 10, camera=args.camera, seed=args.seed)
        clips = make_clips(split, settings)
        if not clips:
            raise ConfigError("no person of this subset has enough probe images for a clip; use a larger --subset")
        gallery = engine.enroll(build_gallery_folder(split, args.out / "gallery"))
        summary = run_video_protocol(engine, gallery, clips, args.out, progress=ProgressBar("video: "))
        summary.update({"settings": {**vars(settings), "widths_px": list(settings.widths_px)},
                        "config": engine.config.to_dict(), "wall_s": round(time.perf_counter() - started, 1)})
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
        return 0
