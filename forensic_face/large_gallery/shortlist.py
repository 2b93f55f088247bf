"""Galleries beyond one machine: an approximate-nearest-neighbour shortlist before Meet-in-the-middle.

Two stages:

1. **Shortlist.** The probe's hypotheses (every blur sigma at every scale, exactly as :meth:`Engine.search`
   makes them) are embedded, averaged into one query template (template addition on the probe side, paper
   Table 3) and looked up in a faiss index of the *plain* gallery templates (the undegraded canonical crop of
   every portrait). The ``K`` best identities form the shortlist.
2. **Re-ranking.** The full Meet-in-the-middle comparison (degraded, resolution-matched gallery hypotheses,
   fusion) runs on the shortlisted identities only: :meth:`Engine.search` on a :class:`Gallery` holding just
   their entries. Meet-in-the-middle scores one identity independently of the others, so the two-stage result
   is the exhaustive ranking restricted to the shortlist.

Templates are centred and L2-normalised before indexing, so the index's inner product IS the engine's
correlation similarity (eq. 3).

The index lives in a folder beside the gallery: ``index.faiss`` and ``index.json`` (format, recognizer name
and weights SHA-256, faiss index kind, row id -> identity / image SHA-256 / path, SHA-256 of the index file).
:func:`sync_index` brings it up to date with a gallery incrementally (new portraits are embedded and added,
removed ones are dropped by id); an index built by another recognizer, another format or whose file does not
hash as recorded is rebuilt from scratch, never mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from forensic_face.engine import (
    ConfigError,
    FaceDetection,
    ForensicFaceError,
    Gallery,
    GalleryEntry,
    Progress,
    SearchResult,
    ShouldCancel,
    check_cancel,
)
from forensic_face.engine.recognizers import template_family
from forensic_face.paths import atomic_write

if TYPE_CHECKING:
    from forensic_face.engine import Engine, LoadedImage

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf"]

INDEX_FORMAT = "1"
INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"
#: Default shortlist size (identities), chosen from the LFW-XRes curve in docs/large_galleries.md.
DEFAULT_SHORTLIST = 100
#: Up to this many rows "auto" uses an exact flat index (1M rows: 122 ms per shortlist on one CPU thread,
#: docs/large_galleries.md); above it an inverted-file (IVF) index.
FLAT_MAX_ROWS = 2_000_000
#: IVF lists probed per query, as a fraction of the lists (at least 16). A quarter kept the planted mate in the
#: shortlist for 200 of 200 synthetic 1M-row queries (1/16: 91.5 %, 1/64: 69.5 %); see docs/large_galleries.md.
IVF_NPROBE_FRACTION = 1 / 4


class IndexMismatchError(ForensicFaceError):
    """A shortlist index does not belong to this recognizer or this gallery; rebuild or update it."""


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError("the shortlist index needs faiss: pip install faiss-cpu (or faiss-gpu)") from exc
    return faiss


def centre_normalise(templates: np.ndarray) -> np.ndarray:
    """``(N,D)`` -> ``(N,D)`` float32, each row minus its mean, L2-normalised: inner products of the result are
    the engine's correlation similarity. A constant row becomes all zeros.

    >>> [round(float(v), 4) for v in centre_normalise(np.array([[1.0, 2.0, 3.0]]))[0]]
    [-0.7071, 0.0, 0.7071]
    """
    x = np.asarray(templates, dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"templates must be (N,D), got shape {x.shape}")
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0), dtype=np.float32)


# -- templates through the engine ------------------------------------------------------------------------------
def plain_templates(engine: Engine, entries: Sequence[GalleryEntry], should_cancel: ShouldCancel = None,
                    chunk_size: int = 256) -> np.ndarray:
    """Templates ``(B,D)`` of the undegraded canonical gallery crops: column 0 of the engine's gallery
    hypotheses without resolution matching (the same crops, landmarks and recognizer)."""
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(entries), chunk_size):
            check_cancel(should_cancel)
            crops = engine.gallery_crops(entries[start:start + chunk_size])
            out.append(engine.embed(crops.images, crops.landmarks).float().cpu().numpy())
    if not out:
        return np.zeros((0, engine.recognizer.embedding_dim), dtype=np.float32)
    return np.concatenate(out, axis=0)


def probe_query(engine: Engine, probe: LoadedImage, face: FaceDetection) -> np.ndarray:
    """The stage-1 query ``(1,D)``: the mean of the probe's hypothesis templates (all sigmas, all scales),
    the search's own (:meth:`Engine.crop_probe_templates`, cached: the stage-2 search embeds them no more)."""
    from forensic_face.engine import crop_face, probe_plan

    cfg = engine.config
    crop = crop_face(probe.pixels, face, cfg.detector.crop_enlarge)
    # The scales Engine.search uses for this crop: a large probe is not magnified past MAX_HYPOTHESIS_PX.
    _, scales = probe_plan(crop.size_px, cfg.size_bin_px, cfg.scales)
    with torch.inference_mode():
        _, _, per_scale = engine.crop_probe_templates(crop, scales, hypothesis_images=False)
        templates = torch.cat([per_scale[s] for s in scales]).float().cpu().numpy()
    return centre_normalise(templates).mean(axis=0, keepdims=True)


# -- the index ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexRow:
    """One indexed portrait; ``face`` (:meth:`FaceDetection.to_json`) lets stage 2 re-crop it without
    re-detecting."""

    identity: str
    sha256: str
    image_path: str
    face: dict[str, Any] | None = None
    note: str = ""


@dataclass
class GalleryIndex:
    """faiss inner-product index of centred, normalised plain gallery templates, with its row sidecar."""

    recognizer: str
    weights_sha256: str
    dim: int
    kind: str
    index: Any
    rows: dict[int, IndexRow] = field(default_factory=dict)
    next_id: int = 0
    #: The gallery folder the portraits were enrolled from (recorded, not needed for searching).
    gallery_root: str = ""

    def __post_init__(self) -> None:
        self._rows_per_identity: dict[str, int] = {}
        for row in self.rows.values():
            self._count(row.identity, 1)

    def _count(self, identity: str, delta: int) -> None:
        left = self._rows_per_identity.get(identity, 0) + delta
        if left > 0:
            self._rows_per_identity[identity] = left
        else:
            self._rows_per_identity.pop(identity, None)

    @property
    def num_identities(self) -> int:
        return len(self._rows_per_identity)

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def build(cls, recognizer: str, weights_sha256: str, rows: Sequence[IndexRow], templates: np.ndarray,
              kind: IndexKind = "auto", seed: int = 0) -> GalleryIndex:
        """A new index of ``templates`` ``(N,D)`` (one row per portrait, in ``rows`` order)."""
        vectors = centre_normalise(templates)
        if len(rows) != vectors.shape[0]:
            raise ConfigError(f"{len(rows)} rows but {vectors.shape[0]} templates")
        num, dim = vectors.shape
        if kind == "auto":
            kind = "flat" if num <= FLAT_MAX_ROWS else "ivf"
        faiss = _faiss()
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif kind == "ivf":
            nlist = ivf_num_lists(num)
            if num < nlist:
                raise ConfigError(f"an IVF index of {nlist} lists needs at least {nlist} templates, got {num}; "
                                  "use kind 'flat'")
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = vectors[rng.choice(num, size=min(num, 64 * nlist), replace=False)]
            index.cp.seed = seed
            index.train(sample)
            index.nprobe = max(16, int(nlist * IVF_NPROBE_FRACTION))
        else:
            raise ConfigError(f"index kind must be auto, flat or ivf, got {kind!r}")
        out = cls(recognizer=recognizer, weights_sha256=weights_sha256, dim=dim, kind=kind, index=index)
        out._add_vectors(rows, vectors)
        return out

    def _add_vectors(self, rows: Sequence[IndexRow], vectors: np.ndarray) -> None:
        if not rows:
            return
        if vectors.shape[1] != self.dim:
            raise ConfigError(f"templates have {vectors.shape[1]} dimensions, the index {self.dim}")
        ids = np.arange(self.next_id, self.next_id + len(rows), dtype=np.int64)
        self.index.add_with_ids(vectors, ids)
        for i, row in zip(ids.tolist(), rows):
            self.rows[i] = row
            self._count(row.identity, 1)
        self.next_id += len(rows)

    def add(self, rows: Sequence[IndexRow], templates: np.ndarray) -> None:
        """Add portraits (raw recognizer templates ``(N,D)``)."""
        self._add_vectors(rows, centre_normalise(templates))

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        removed = self.index.remove_ids(np.asarray(list(ids), dtype=np.int64))
        if removed != len(ids):
            raise IndexMismatchError(f"the index held {removed} of the {len(ids)} rows to remove; rebuild it")
        for i in ids:
            self._count(self.rows.pop(i).identity, -1)

    @property
    def num_rows(self) -> int:
        return int(self.index.ntotal)

    # -- search ----------------------------------------------------------------------------------------------
    def shortlist(self, queries: np.ndarray, num_identities: int) -> list[tuple[str, float]]:
        """The ``num_identities`` best identities for ``queries`` ``(Q,D)`` (centred, normalised), best first.

        An identity scores as its best portrait against its best query. Rows are fetched in growing batches
        until enough distinct identities are found (identities can have several portraits)."""
        if num_identities < 1:
            raise ConfigError(f"the shortlist size must be >= 1, got {num_identities}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        total = self.num_rows
        if total == 0:
            raise IndexMismatchError("the shortlist index is empty; build it from the gallery first")
        want = min(num_identities, self.num_identities)
        fetch = min(total, max(2 * num_identities, 16))
        while True:
            scores, ids = self.index.search(queries, fetch)
            best: dict[str, float] = {}
            for s, i in zip(scores.ravel().tolist(), ids.ravel().tolist()):
                if i < 0:
                    continue
                identity = self.rows[i].identity
                if s > best.get(identity, -np.inf):
                    best[identity] = s
            if len(best) >= want or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:num_identities]

    # -- persistence -----------------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write ``index.faiss`` and ``index.json`` atomically (the sidecar last, naming the file's hash)."""
        faiss = _faiss()
        folder.mkdir(parents=True, exist_ok=True)
        index = self.index
        if hasattr(faiss, "index_gpu_to_cpu") and _is_gpu_index(index):
            index = faiss.index_gpu_to_cpu(index)
        data = faiss.serialize_index(index).tobytes()
        with atomic_write(folder / INDEX_FILE) as tmp:
            tmp.write_bytes(data)
        sidecar = {
            "format": INDEX_FORMAT,
            "recognizer": self.recognizer,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
            "kind": self.kind,
            "faiss": faiss.__version__,
            "next_id": self.next_id,
            "gallery_root": self.gallery_root,
            "index_sha256": hashlib.sha256(data).hexdigest(),
            "rows": {str(i): dataclasses.asdict(r) for i, r in sorted(self.rows.items())},
        }
        with atomic_write(folder / SIDECAR_FILE) as tmp:
            tmp.write_bytes(json.dumps(sidecar, indent=1, sort_keys=True).encode())

    @classmethod
    def load(cls, folder: Path, recognizer: str, weights_sha256: str) -> GalleryIndex:
        """The index in ``folder``; :class:`IndexMismatchError` when it is missing, unreadable, tampered with,
        of another format, or was built by another recognizer or other weights."""
        faiss = _faiss()
        index_path, sidecar_path = folder / INDEX_FILE, folder / SIDECAR_FILE
        if not index_path.is_file() or not sidecar_path.is_file():
            raise IndexMismatchError(f"{folder}: no shortlist index; build it with 'forensic-face index build'")
        try:
            meta = json.loads(sidecar_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexMismatchError(f"{sidecar_path}: unreadable ({exc}); rebuild the index") from exc
        if meta.get("format") != INDEX_FORMAT:
            raise IndexMismatchError(f"{sidecar_path}: index format {meta.get('format')!r}, expected "
                                     f"{INDEX_FORMAT!r}; rebuild the index")
        if meta.get("recognizer") != recognizer or meta.get("weights_sha256") != weights_sha256:
            raise IndexMismatchError(
                f"{folder}: the index was built by {meta.get('recognizer')!r} (weights "
                f"{str(meta.get('weights_sha256'))[:12]}), the engine uses {recognizer!r} (weights "
                f"{weights_sha256[:12]}); rebuild the index")
        data = index_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("index_sha256"):
            raise IndexMismatchError(f"{index_path}: does not hash as recorded in {SIDECAR_FILE}; rebuild the index")
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        try:
            rows = {int(k): IndexRow(**v) for k, v in meta["rows"].items()}
        except (TypeError, ValueError) as exc:
            raise IndexMismatchError(f"{sidecar_path}: malformed rows ({exc}); rebuild the index") from exc
        if index.ntotal != len(rows) or index.d != meta["dim"]:
            raise IndexMismatchError(f"{folder}: index and sidecar disagree ({index.ntotal} vs {len(rows)} rows)")
        return cls(recognizer=recognizer, weights_sha256=weights_sha256, dim=int(meta["dim"]), kind=meta["kind"],
                   index=index, rows=rows, next_id=int(meta["next_id"]),
                   gallery_root=str(meta.get("gallery_root", "")))

    def to_gpu(self) -> None:
        """Move the index to GPU 0 when faiss was built with GPU support and a GPU is visible; else keep it."""
        faiss = _faiss()
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
            log.info("faiss has no GPU support here; the shortlist index stays on the CPU")
            return
        self._gpu_resources = faiss.StandardGpuResources()
        self.index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self.index)

    def digest(self) -> str:
        """SHA-256 of the sorted (identity, image SHA-256) rows: what the index covers."""
        keys = sorted(f"{r.identity}\t{r.sha256}" for r in self.rows.values())
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _is_gpu_index(index: Any) -> bool:
    return "Gpu" in type(index).__name__


def ivf_num_lists(num_rows: int) -> int:
    """Inverted lists of an IVF index: about ``4 * sqrt(N)``, a power of two, 64..65536.

    >>> ivf_num_lists(1_000_000)
    4096
    """
    target = 4.0 * float(np.sqrt(max(num_rows, 1)))
    return int(min(65536, max(64, 2 ** round(np.log2(target)))))


def entry_row(entry: GalleryEntry) -> IndexRow:
    return IndexRow(identity=entry.identity, sha256=entry.sha256, image_path=str(entry.image_path),
                    face=entry.crop.face.to_json(), note=entry.note)


def row_entry(row: IndexRow, crop_enlarge: float) -> GalleryEntry:
    """Re-create a gallery entry from its row: load the portrait, check its SHA-256, crop the stored face."""
    from forensic_face.engine import crop_face, load_image

    if row.face is None:
        raise IndexMismatchError(f"{row.image_path}: the index row has no face position; rebuild the index")
    image = load_image(row.image_path)
    if image.sha256 != row.sha256:
        raise IndexMismatchError(f"{row.image_path}: the portrait changed since it was indexed; run 'index update'")
    return GalleryEntry(identity=row.identity, image_path=Path(row.image_path), sha256=row.sha256,
                        crop=crop_face(image.pixels, FaceDetection.from_json(row.face), crop_enlarge), note=row.note)


def gallery_from_index(index: GalleryIndex, identities: Sequence[str], root: Path, crop_enlarge: float) -> Gallery:
    """A :class:`Gallery` of the indexed portraits of ``identities`` (row order), re-cropped from disk."""
    keep = set(identities)
    rows = [r for _, r in sorted(index.rows.items()) if r.identity in keep]
    return Gallery(root=root, entries=tuple(row_entry(r, crop_enlarge) for r in rows))


def _row_key(row: IndexRow) -> tuple[str, str]:
    return row.identity, row.sha256


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync_index` did."""

    added: int
    removed: int
    rebuilt: bool
    reason: str = ""


def sync_index(
    engine: Engine,
    gallery: Gallery,
    folder: Path,
    kind: IndexKind = "auto",
    templates: np.ndarray | None = None,
    should_cancel: ShouldCancel = None,
) -> tuple[GalleryIndex, SyncReport]:
    """Bring the index in ``folder`` up to date with ``gallery`` and save it.

    New portraits (by identity and image SHA-256) are embedded and added, portraits no longer in the gallery
    removed. A missing index, or one that :meth:`GalleryIndex.load` refuses (other recognizer or weights, other
    format, corrupt), is rebuilt from scratch. ``templates`` ``(len(gallery.entries), D)`` may supply plain
    templates already computed (e.g. by distributed enrollment) in entry order.
    """
    rec = engine.recognizer
    if templates is not None and templates.shape[0] != len(gallery.entries):
        raise ConfigError(f"{templates.shape[0]} templates for {len(gallery.entries)} gallery entries")
    wanted = {(e.identity, e.sha256): k for k, e in enumerate(gallery.entries)}

    def embed(indices: list[int]) -> np.ndarray:
        if templates is not None:
            return templates[indices]
        return plain_templates(engine, [gallery.entries[i] for i in indices], should_cancel)

    try:
        index = GalleryIndex.load(folder, template_family(rec), rec.weights_sha256)
    except IndexMismatchError as exc:
        reason = str(exc)
        if (folder / SIDECAR_FILE).exists():
            log.warning("rebuilding the shortlist index: %s", reason)
        order = sorted(wanted.values())
        index = GalleryIndex.build(template_family(rec), rec.weights_sha256,
                                   [entry_row(gallery.entries[i]) for i in order], embed(order), kind=kind,
                                   seed=engine.config.seed)
        index.gallery_root = str(gallery.root)
        index.save(folder)
        return index, SyncReport(added=len(order), removed=0, rebuilt=True, reason=reason)
    present = {_row_key(r): i for i, r in index.rows.items()}
    stale = [i for key, i in present.items() if key not in wanted]
    new = sorted(k for key, k in wanted.items() if key not in present)
    index.remove(stale)
    changed_root = index.gallery_root != str(gallery.root)
    index.gallery_root = str(gallery.root)
    if new:
        index.add([entry_row(gallery.entries[i]) for i in new], embed(new))
    if stale or new or changed_root:
        index.save(folder)
    log.info("shortlist index %s: %d added, %d removed, %d rows", folder, len(new), len(stale), index.num_rows)
    return index, SyncReport(added=len(new), removed=len(stale), rebuilt=False)


# -- two-stage search ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShortlistResult:
    """A two-stage search: the stage-2 :class:`SearchResult` (ranking covers the shortlist only) and stage 1."""

    result: SearchResult
    #: ``(identity, stage-1 correlation)`` of the shortlist, best first.
    shortlist: tuple[tuple[str, float], ...]
    timing: dict[str, float]


def restrict_gallery(gallery: Gallery, identities: Sequence[str]) -> Gallery:
    """The gallery with only the entries of ``identities`` (entry order kept)."""
    keep = set(identities)
    return dataclasses.replace(gallery, entries=tuple(e for e in gallery.entries if e.identity in keep))


def shortlist_search(
    engine: Engine,
    index: GalleryIndex,
    probe: LoadedImage,
    gallery: Gallery | None,
    num_shortlist: int = DEFAULT_SHORTLIST,
    face: FaceDetection | None = None,
    progress: Progress = None,
    should_cancel: ShouldCancel = None,
) -> ShortlistResult:
    """Stage 1 (index shortlist of ``num_shortlist`` identities), then Meet-in-the-middle on the shortlist.

    The index must cover exactly the gallery's portraits (:func:`sync_index`), otherwise
    :class:`IndexMismatchError`; it must come from the engine's recognizer and weights. With ``gallery=None``
    the shortlisted portraits are re-cropped from disk using the index rows (:func:`gallery_from_index`), so a
    search never needs the whole gallery in memory.
    """
    rec = engine.recognizer
    family = template_family(rec)
    if index.recognizer != family or index.weights_sha256 != rec.weights_sha256:
        raise IndexMismatchError(f"the index was built by {index.recognizer!r}, the engine uses {family!r} "
                                 "(or other weights); rebuild the index")
    if gallery is not None:
        covered = {_row_key(r) for r in index.rows.values()}
        if covered != {(e.identity, e.sha256) for e in gallery.entries}:
            raise IndexMismatchError("the shortlist index does not cover exactly this gallery; run 'index update'")
    t0 = time.perf_counter()
    face = face if face is not None else engine.best_face(probe)
    query = probe_query(engine, probe, face)
    t1 = time.perf_counter()
    shortlist = index.shortlist(query, num_shortlist)
    t2 = time.perf_counter()
    check_cancel(should_cancel)
    names = [identity for identity, _ in shortlist]
    if gallery is not None:
        sub = restrict_gallery(gallery, names)
    else:
        root = Path(index.gallery_root or next(iter(index.rows.values())).image_path)
        sub = gallery_from_index(index, names, root, engine.config.detector.crop_enlarge)
    result = engine.search(probe, sub, face=face, progress=progress, should_cancel=should_cancel)
    t3 = time.perf_counter()
    timing = {"probe_query_s": t1 - t0, "shortlist_s": t2 - t1, "rerank_s": t3 - t2}
    provenance = dict(result.provenance)
    provenance["shortlist"] = {
        "num_shortlist": num_shortlist, "index_kind": index.kind, "index_rows": index.num_rows,
        "index_digest": index.digest(), "index_identities": len({r.identity for r in index.rows.values()}),
        "shortlisted": [[identity, round(score, 6)] for identity, score in shortlist],
    }
    return ShortlistResult(result=dataclasses.replace(result, provenance=provenance), shortlist=tuple(shortlist),
                           timing={k: round(v, 4) for k, v in timing.items()})
