"""Copy trained face-SR networks into resources/weights and record them in manifest.json.

    python -m forensic_face.training.ship_sr RUN_DIR [RUN_DIR ...]

Each ``RUN_DIR`` is a finished :mod:`forensic_face.training.train_sr` run (``face_sr_x{scale}.safetensors``,
``config.json``, ``metrics.json``). The manifest entry ``face_sr_x{scale}`` gets the file's SHA-256, the
training command rebuilt from config.json, the data, the seed and the final metrics. Entries of other models
in the manifest are kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forensic_face.engine import MANIFEST_PATH, RESOURCES_WEIGHTS_DIR, ConfigError
from forensic_face.engine.upsamplers import FaceSrNet, count_parameters, load_face_sr, weights_name
from forensic_face.training.shipping import ship_weights
from forensic_face.training.shipping import training_command as shipped_training_command
from forensic_face.training.train_sr import CONFIG_NAME, METRICS_NAME, SrTrainConfig


#: Settings that never change what is trained (left out of the recorded command).
_NOT_IN_COMMAND = {"progress", "synthetic", "out_dir", "scale", "init_from_sha256"}


def training_command(config: dict[str, Any]) -> str:
    """The ``train_sr`` command line that reproduces ``config`` (only non-default settings are spelled out)."""
    return shipped_training_command(
        f"python -m forensic_face.training.train_sr --scale {config['scale']} --out-dir {config['out_dir']}", config,
        SrTrainConfig(scale=int(config["scale"]), out_dir="").to_dict(), _NOT_IN_COMMAND)


def ship_run(run_dir: Path, weights_dir: Path = RESOURCES_WEIGHTS_DIR, manifest_path: Path = MANIFEST_PATH) -> str:
    """Copy one run's network into ``weights_dir`` and update ``manifest_path``; return the manifest name."""
    config = json.loads((run_dir / CONFIG_NAME).read_text())
    metrics = json.loads((run_dir / METRICS_NAME).read_text())
    scale = int(config["scale"])
    source = run_dir / f"face_sr_x{scale}.safetensors"
    if not source.is_file():
        raise ConfigError(f"{source} is missing: the run in {run_dir} has not finished")
    if int(metrics["iteration"]) != int(config["iterations"]):
        raise ConfigError(f"{run_dir} stopped at iteration {metrics['iteration']} of {config['iterations']}")
    name = weights_name(scale)
    ship_weights(source, name, weights_dir, manifest_path,
                 lambda target, previous: _manifest_entry(load_face_sr(target), config, metrics, previous))
    return name


def _manifest_entry(net: FaceSrNet, config: dict[str, Any], metrics: dict[str, Any],
                    previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest entry of a shipped network (``file`` and ``sha256`` are added by ``ship_weights``)."""
    scale = int(config["scale"])
    origin = "trained from scratch on LFW faces"
    lineage: dict[str, Any] = {}
    if config.get("init_from"):
        origin = (f"fine-tuned on LFW faces from the network with SHA-256 {config.get('init_from_sha256', '?')}"
                  + (f" with the identity loss (weight {config['identity_weight']})"
                     if config.get("identity_weight") else ""))
        if previous is not None and previous.get("sha256") == config.get("init_from_sha256"):
            # The parent's file is overwritten here; its record (and git history) keep it traceable.
            lineage = {"fine_tuned_from": previous}
    identity_metrics = {k: round(float(metrics[k]), 5) for k in
                        ("val_identity_loss_sr", "val_identity_loss_bicubic") if k in metrics}
    return {
        **lineage,
        "description": (
            f"Face super-resolution {scale}x (EDSR-style FaceSrNet {json.dumps(net.arch(), sort_keys=True)}, "
            f"{count_parameters(net)} parameters), {origin}"
        ),
        "training_command": training_command(config),
        "data": (
            "LFW deep-funneled, people of peopleDevTrain.txt only (the last people of the list held out for "
            "validation); 140 px centred face squares resized to LR*scale as HR; LR made by "
            "forensic_face.surveillance.degrade_to_scale with sample_surveillance_params (random per sample)"
        ),
        "seed": int(config["seed"]),
        "metrics": {
            "iterations": int(metrics["iteration"]),
            "train_seconds": metrics["train_seconds"],
            "device": metrics["device"],
            "train_l1_last_interval": round(float(metrics["train_l1"]), 5),
            "val_psnr_sr_db": round(float(metrics["val_psnr_sr"]), 3),
            "val_psnr_bicubic_db": round(float(metrics["val_psnr_bicubic"]), 3),
            "val_faces": int(config["val_images"]),
            **identity_metrics,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forensic_face.training.ship_sr", description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="finished train_sr run folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for run in args.runs:
        ship_run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
