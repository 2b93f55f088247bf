"""Enrollment of very large galleries as Ray tasks: the same call on a laptop (local Ray) and on a cluster.

The driver lists the gallery folder (:func:`forensic_face.engine.gallery.list_gallery_images`) and cuts it into
shards; each shard is one Ray task that builds its own :class:`Engine` from the (frozen, picklable)
:class:`EngineConfig`, enrolls its images exactly as :func:`enroll_gallery` does (load, hash, MTCNN, largest face,
1.3x crop), embeds the plain canonical crops for the shortlist index and, optionally, warms the engine's
template cache with the degraded, resolution-matched gallery hypotheses of given probe size bins. Shards come
back in order, so the gallery equals the in-process one entry for entry.

On a cluster: ``ray.init(address="ray://head:10001")`` (or ``address="auto"`` on a node of the cluster); every
node needs forensic_face installed, the gallery folder and the template cache folder on a shared file system
(the same paths everywhere), and the model weights in its own cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.engine import (
    Cancelled,
    ConfigError,
    EngineConfig,
    Gallery,
    GalleryEntry,
    GalleryProblem,
    assemble_gallery,
    check_cancel,
    list_gallery_images,
    require_faces,
)
from forensic_face.engine.recognizers import template_family

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None] | None
ShouldCancel = Callable[[], bool] | None


@dataclass(frozen=True)
class ShardResult:
    """What one enrollment task returns: its entries, problems and plain templates ``(len(entries), D)``."""

    entries: tuple[GalleryEntry, ...]
    problems: tuple[GalleryProblem, ...]
    templates: np.ndarray
    warmed: int
    seconds: float


@dataclass(frozen=True)
class DistributedEnrollment:
    """The enrolled gallery and its plain templates (entry order) for :func:`sync_index`."""

    gallery: Gallery
    templates: np.ndarray
    num_shards: int
    warmed: int


def enroll_items(
    items: Sequence[tuple[str, Path]], engine: Any, chunk_size: int = 16
) -> tuple[list[GalleryEntry], list[GalleryProblem]]:
    """Enroll ``(identity, path)`` pairs with the engine's detector and settings (the engine's own loop)."""
    from forensic_face.engine import enroll_items as enroll_with_detector

    det_cfg = engine.config.detector
    return enroll_with_detector(items, engine.detector, det_cfg.crop_enlarge, det_cfg.gallery_min_face_px,
                                chunk_size)


def enroll_with_engine(engine: Any, items: Sequence[tuple[str, Path]], warm_size_bins: Sequence[int] = ()
                       ) -> ShardResult:
    """Enroll ``items`` with ``engine``, embed their plain crops, warm its template cache for ``warm_size_bins``."""
    from forensic_face.large_gallery.shortlist import plain_templates

    t0 = time.perf_counter()
    entries, problems = enroll_items(items, engine)
    templates = plain_templates(engine, entries)
    # The engine's own warming: the scales and targets a search of a probe in these size bins looks up.
    warmed = engine.warm_gallery(entries, warm_size_bins) if entries else 0
    return ShardResult(tuple(entries), tuple(problems), templates, warmed, time.perf_counter() - t0)


def enroll_shard(
    items: Sequence[tuple[str, Path]],
    config: EngineConfig,
    cache_dir: Path | None,
    warm_size_bins: Sequence[int] = (),
    num_threads: int = 1,
) -> ShardResult:
    """One Ray task: a fresh engine from ``config`` (models load on the worker), then :func:`enroll_with_engine`."""
    import torch

    from forensic_face.engine import Engine

    torch.set_num_threads(num_threads)
    return enroll_with_engine(Engine(config, cache_dir=cache_dir), items, warm_size_bins)


def enroll_items_distributed(
    items: Sequence[tuple[str, Path]],
    config: EngineConfig,
    cache_dir: Path | None = None,
    address: str | None = None,
    shard_size: int = 256,
    warm_size_bins: Sequence[int] = (),
    num_cpus_per_task: float = 1.0,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
    ray_init_kwargs: dict[str, Any] | None = None,
) -> tuple[list[ShardResult], int]:
    """Enroll ``(identity, path)`` pairs as Ray tasks of ``shard_size`` images; shard results in item order.

    Ray is started locally unless it is already running (then the running instance is used and left running)
    or ``address`` names a cluster. ``cache_dir`` is the engine's template cache (default: the user cache),
    which every node must see at the same path for warming to help later searches.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("distributed enrollment needs Ray: pip install ray") from exc
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    if not items:
        return [], 0
    if cache_dir is None:
        from forensic_face.paths import cache_dir as default_cache_dir

        cache_dir = default_cache_dir() / "templates"
    started = False
    if not ray.is_initialized():
        ray.init(address=address, **(ray_init_kwargs or {}))
        started = True
    shards = [list(items[i:i + shard_size]) for i in range(0, len(items), shard_size)]
    try:
        task = ray.remote(num_cpus=num_cpus_per_task)(enroll_shard)
        config_ref = ray.put(config)
        refs = [task.remote(shard, config_ref, cache_dir, tuple(warm_size_bins)) for shard in shards]
        position = {ref: k for k, ref in enumerate(refs)}
        results: list[ShardResult | None] = [None] * len(refs)
        pending = list(refs)
        done_images = 0
        while pending:
            if should_cancel is not None and should_cancel():
                for ref in pending:
                    ray.cancel(ref)
                raise Cancelled("enrollment cancelled by the user")
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                k = position[ref]
                results[k] = ray.get(ref)
                done_images += len(shards[k])
                if progress is not None:
                    progress(done_images, len(items), "enrolling")
    finally:
        if started:
            ray.shutdown()
    out: list[ShardResult] = []
    for result in results:
        if result is None:
            raise RuntimeError("a Ray enrollment task returned no result")
        out.append(result)
    return out, len(shards)


def enroll_distributed(
    folder: Path,
    config: EngineConfig,
    cache_dir: Path | None = None,
    address: str | None = None,
    shard_size: int = 256,
    warm_size_bins: Sequence[int] = (),
    num_cpus_per_task: float = 1.0,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
    ray_init_kwargs: dict[str, Any] | None = None,
) -> DistributedEnrollment:
    """Enroll ``folder`` as Ray tasks (see :func:`enroll_items_distributed`) and return the gallery with its
    plain templates, equal entry for entry to :meth:`Engine.enroll` on the same folder."""
    folder = Path(folder)
    items, problems = list_gallery_images(folder)
    results, num_shards = enroll_items_distributed(
        items, config, cache_dir=cache_dir, address=address, shard_size=shard_size, warm_size_bins=warm_size_bins,
        num_cpus_per_task=num_cpus_per_task, progress=progress, should_cancel=should_cancel,
        ray_init_kwargs=ray_init_kwargs)
    entries: list[GalleryEntry] = []
    for result in results:
        entries.extend(result.entries)
        problems.extend(result.problems)
    gallery = assemble_gallery(folder, len(items), entries, problems)
    log.info("enrollment of %s ran as %d Ray tasks", folder, num_shards)
    return DistributedEnrollment(gallery=gallery, templates=np.concatenate([r.templates for r in results], axis=0),
                                 num_shards=num_shards, warmed=sum(r.warmed for r in results))


@dataclass(frozen=True)
class IndexUpdate:
    """What :func:`index_gallery_folder` did."""

    index_dir: Path
    added: int
    removed: int
    kept: int
    rebuilt: bool
    reason: str
    problems: tuple[GalleryProblem, ...]
    num_rows: int
    seconds: float


def index_gallery_folder(
    folder: Path,
    index_dir: Path,
    config: EngineConfig,
    cache_dir: Path | None = None,
    use_ray: bool = False,
    address: str | None = None,
    shard_size: int = 256,
    warm_size_bins: Sequence[int] = (),
    kind: str = "auto",
    rebuild: bool = False,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
) -> IndexUpdate:
    """Build or incrementally update the shortlist index of a gallery folder.

    Portraits already indexed (same identity, same file SHA-256) are kept without re-detection; new or changed
    files are enrolled (in-process, or as Ray tasks with ``use_ray``) and added; rows whose file is gone or
    changed are removed. An index of another recognizer, weights or format, or a corrupt one, is rebuilt from
    scratch (also with ``rebuild=True``).
    """
    from forensic_face.engine import Engine, sha256_file
    from forensic_face.large_gallery.shortlist import (
        GalleryIndex,
        IndexMismatchError,
        entry_row,
    )

    t0 = time.perf_counter()
    folder = Path(folder)
    items, problems = list_gallery_images(folder)
    engine = Engine(config, cache_dir=cache_dir)
    rec = engine.recognizer
    index: GalleryIndex | None = None
    reason = "rebuild requested" if rebuild else ""
    if not rebuild:
        try:
            index = GalleryIndex.load(index_dir, template_family(rec), rec.weights_sha256)
        except IndexMismatchError as exc:
            reason = str(exc)
            log.warning("building the shortlist index from scratch: %s", reason)
    present = {} if index is None else {(r.identity, r.sha256): i for i, r in index.rows.items()}
    keys_seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, Path]] = []
    for identity, path in items:
        check_cancel(should_cancel, "indexing cancelled by the user")
        key = (identity, sha256_file(path))
        if key in keys_seen:
            problems.append(GalleryProblem(path, f"same image as another portrait of {identity}; indexed once"))
            continue
        keys_seen.add(key)
        if key not in present:
            todo.append((identity, path))
    stale = [i for key, i in present.items() if key not in keys_seen]
    if use_ray:
        results, _ = enroll_items_distributed(todo, config, cache_dir=cache_dir, address=address,
                                              shard_size=shard_size, warm_size_bins=warm_size_bins,
                                              progress=progress, should_cancel=should_cancel)
        entries = [e for r in results for e in r.entries]
        problems.extend(p for r in results for p in r.problems)
        templates = (np.concatenate([r.templates for r in results]) if results
                     else np.zeros((0, rec.embedding_dim), np.float32))
    else:
        shards = []
        for start in range(0, len(todo), shard_size):
            check_cancel(should_cancel, "indexing cancelled by the user")
            shards.append(enroll_with_engine(engine, todo[start:start + shard_size], warm_size_bins))
            if progress is not None:
                progress(min(start + shard_size, len(todo)), len(todo), "enrolling")
        entries = [e for r in shards for e in r.entries]
        problems.extend(p for r in shards for p in r.problems)
        templates = (np.concatenate([r.templates for r in shards]) if shards
                     else np.zeros((0, rec.embedding_dim), np.float32))
    rows = [entry_row(e) for e in entries]
    if index is None:
        require_faces(folder, len(items), len(rows))
        index = GalleryIndex.build(template_family(rec), rec.weights_sha256, rows, templates,
                                   kind=kind, seed=config.seed)  # type: ignore[arg-type]
        rebuilt = True
    else:
        index.remove(stale)
        index.add(rows, templates)
        rebuilt = False
    index.gallery_root = str(folder)
    index.save(index_dir)
    kept = len(present) - len(stale)
    log.info("shortlist index %s: %d added, %d removed, %d kept, %d rows", index_dir, len(rows), len(stale), kept,
             index.num_rows)
    return IndexUpdate(index_dir=index_dir, added=len(rows), removed=len(stale), kept=kept, rebuilt=rebuilt,
                       reason=reason, problems=tuple(problems), num_rows=index.num_rows,
                       seconds=time.perf_counter() - t0)
