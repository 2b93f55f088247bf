"""``forensic-face train-sr``, ``eval-sr`` and ``train-recognizer``: training the networks we ship (docs/super_resolution.md, docs/recognizer.md)."""

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
