"""``forensic-face index`` and ``forensic-face search-large``: galleries too large to search exhaustively.

``index build|update GALLERY`` enrolls the portraits (in-process, or as Ray tasks with ``--ray``) and keeps a faiss
index of their plain templates beside the gallery (default: the user cache, one folder per gallery path).
``search-large`` shortlists ``--shortlist K`` identities from the index and runs Meet-in-the-middle on them only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from forensic_face.cli.common import (
    ProgressBar,
    add_engine_arguments,
    engine_config_from_args,
    parse_box,
    search_probes,
)
from forensic_face.engine import ConfigError, ForensicFaceError
from forensic_face.faults import printable
from forensic_face.engine.recognizers import template_family

log = logging.getLogger(__name__)


def default_index_dir(gallery: Path) -> Path:
    """``<user cache>/indexes/<name>-<sha256 of the absolute gallery path>``: never inside the evidence folder."""
    from forensic_face.paths import cache_dir

    resolved = Path(gallery).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return cache_dir() / "indexes" / f"{resolved.name}-{digest}"


def _parse_bins(text: str) -> tuple[int, ...]:
    try:
        bins = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--warm-bins must be pixel sizes separated by commas, got {text!r}") from None
    if any(b < 1 for b in bins):
        raise argparse.ArgumentTypeError(f"--warm-bins must be positive, got {text!r}")
    return bins


class IndexCommand:
    """Build or update the shortlist index of a gallery folder."""

    name = "index"
    help = "build or update the shortlist index of a large gallery (faiss; optional Ray enrollment)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["build", "update"],
                            help="build: from scratch; update: add new portraits, drop removed ones")
        parser.add_argument("gallery", type=Path, help="gallery folder (one sub-folder per identity)")
        parser.add_argument("--index", type=Path, default=None, help="index folder (default: in the user cache)")
        parser.add_argument("--kind", choices=["auto", "flat", "ivf"], default="auto",
                            help="faiss index: flat (exact), ivf (inverted file), auto (exact flat up to 2,000,000 portraits, IVF above)")
        parser.add_argument("--ray", action="store_true", help="enroll new portraits as Ray tasks")
        parser.add_argument("--ray-address", default=None,
                            help="Ray cluster address (e.g. auto or ray://head:10001); default: a local Ray")
        parser.add_argument("--shard-size", type=int, default=256, help="portraits per enrollment task")
        parser.add_argument("--warm-bins", type=_parse_bins, default=(),
                            help="also pre-compute degraded gallery templates for these probe crop sizes, e.g. 28,32")
        parser.add_argument("--json", action="store_true")
        add_engine_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.large_gallery.distributed import index_gallery_folder

        index_dir = args.index or default_index_dir(args.gallery)
        bar = ProgressBar()
        try:
            update = index_gallery_folder(
                args.gallery, index_dir, engine_config_from_args(args), use_ray=args.ray or bool(args.ray_address),
                address=args.ray_address, shard_size=args.shard_size, warm_size_bins=args.warm_bins,
                kind=args.kind, rebuild=args.action == "build", progress=bar)
        finally:
            bar.close()
        record = {"index": str(update.index_dir), "rows": update.num_rows, "added": update.added,
                  "removed": update.removed, "kept": update.kept, "rebuilt": update.rebuilt,
                  "reason": update.reason, "seconds": round(update.seconds, 2),
                  "problems": [{"image": str(p.image_path), "reason": p.reason} for p in update.problems]}
        if args.json:
            json.dump(record, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            what = "built" if update.rebuilt else "updated"
            print(f"{update.index_dir}: index {what}: {update.num_rows} portraits "
                  f"({update.added} added, {update.removed} removed, {update.kept} unchanged) in {update.seconds:.1f} s")
            if update.rebuilt and update.reason and args.action == "update":
                print(f"  rebuilt because: {update.reason}")
            for p in update.problems:
                print(f"  problem: {printable(p.image_path)}: {printable(p.reason)}")
        return 0


class ShortlistSearchCommand:
    """Two-stage search: index shortlist of K identities, then Meet-in-the-middle on the shortlist."""

    name = "search-large"
    help = "search a large indexed gallery: faiss shortlist of K identities, then Meet-in-the-middle on them"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.large_gallery.shortlist import DEFAULT_SHORTLIST

        parser.add_argument("probes", nargs="+", type=Path, help="probe stills")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--gallery", type=Path, help="gallery folder indexed with 'index build' (default index)")
        where.add_argument("--index", type=Path, help="index folder")
        parser.add_argument("--shortlist", type=int, default=DEFAULT_SHORTLIST, metavar="K",
                            help=f"identities re-ranked by Meet-in-the-middle (default {DEFAULT_SHORTLIST})")
        parser.add_argument("--top", type=int, default=20, help="candidates to list per probe")
        parser.add_argument("--box", type=parse_box, help="face box x1,y1,x2,y2 drawn by hand (one probe)")
        parser.add_argument("--gpu-index", action="store_true", help="search the index on the GPU (faiss-gpu); automatic when the engine runs on CUDA")
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        add_engine_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.engine import Engine
        from forensic_face.large_gallery.shortlist import GalleryIndex, shortlist_search

        if args.box is not None and len(args.probes) != 1:
            raise ForensicFaceError("--box applies to one probe; give a single probe image with it")
        if args.shortlist < 1:
            raise ConfigError(f"--shortlist must be >= 1, got {args.shortlist}")
        engine = Engine(engine_config_from_args(args))
        index_dir = args.index or default_index_dir(args.gallery)
        rec = engine.recognizer
        index = GalleryIndex.load(index_dir, template_family(rec), rec.weights_sha256)
        if args.gpu_index or engine.device.type == "cuda":
            index.to_gpu()  # stays on the CPU (logged) when faiss has no GPU support

        def search(probe: Any, face: Any, bar: Any) -> tuple[Any, dict[str, Any]]:
            out = shortlist_search(engine, index, probe, None, num_shortlist=args.shortlist, face=face, progress=bar)
            return out.result, {"shortlist": {"k": args.shortlist, "index": str(index_dir),
                                              "index_rows": index.num_rows, "timing_s": out.timing}}

        return search_probes(args, engine, search)
