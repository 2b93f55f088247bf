"""Shortlist benchmarks (docs/large_galleries.md).

``lfw``: how much rank-1 the two-stage search (faiss shortlist of K identities, then Meet-in-the-middle on the
shortlist) loses against the exhaustive search on LFW-XRes (24 px probes, protocol code of
:mod:`forensic_face.eval.protocol`), for a range of K. Meet-in-the-middle scores each identity independently,
so the two-stage ranking is the exhaustive ranking restricted to the shortlist; that identity is checked on
real two-stage searches of the first probes, then every K is scored from one exhaustive run.

``synthetic``: random unit templates (D=128, like dlib) at 10k, 100k and 1M identities: index build time,
memory, shortlist latency, recall of a planted mate, and end-to-end latency with stage 2 timed on a small real
LFW gallery.

    .venv/bin/python benchmarks/bench_shortlist.py lfw --probes 120 --out /tmp/shortlist/lfw.json
    .venv/bin/python benchmarks/bench_shortlist.py synthetic --sizes 10000,100000,1000000 --out /tmp/shortlist/syn.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from forensic_face.engine import Engine
from forensic_face.engine.config import EngineConfig
from forensic_face.engine.imaging import load_image
from forensic_face.engine.recognizers import template_family
from forensic_face.eval.protocol import (
    KnownFaceCache,
    ProbeSpec,
    XResSplit,
    lfw_xres_split,
    materialize_probes,
)
from forensic_face.eval.runner import (
    build_gallery_folder,
    choose_face,
    detector_digest,
    fallback_face,
)
from forensic_face.large_gallery.shortlist import (
    GalleryIndex,
    IndexRow,
    centre_normalise,
    plain_templates,
    probe_query,
    restrict_gallery,
    shortlist_search,
)
from forensic_face.paths import lfw_dir

log = logging.getLogger("bench_shortlist")
KS = (1, 5, 10, 25, 50, 100, 200)


def _config(budget: str) -> EngineConfig:
    return EngineConfig(device="cpu", budget=budget, top_k=1)


def run_lfw(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    root = Path(args.cache)
    engine = Engine(_config(args.budget), cache_dir=root / "templates")
    full = lfw_xres_split(lfw_dir(), subset=args.people)
    rng = np.random.default_rng(args.seed)
    picked = sorted(rng.choice(len(full.probes), size=min(args.probes, len(full.probes)), replace=False).tolist())
    split = XResSplit(gallery=full.gallery, probes=tuple(full.probes[i] for i in picked),
                      people_list=full.people_list)
    spec = ProbeSpec(width_px=args.width)

    def detect_original(path: Path) -> tuple[np.ndarray, np.ndarray]:
        faces = engine.detector.detect([load_image(path).pixels],
                                       min_face_px=engine.config.detector.gallery_min_face_px)[0]
        if not faces:
            return np.zeros((0, 4)), np.zeros((0, 5, 2))
        return np.stack([f.box for f in faces]), np.stack([f.landmarks for f in faces])

    known = KnownFaceCache(root / "known_faces.json", detector_digest(engine.config))
    records = materialize_probes(split, spec, root / f"probes-w{args.width}", known, detect_original)
    t0 = time.perf_counter()
    gallery = engine.enroll(build_gallery_folder(full, root / "gallery"))
    enroll_s = time.perf_counter() - t0
    identities = sorted({e.identity for e in gallery.entries})
    log.info("gallery: %d identities (%d problems); %d probes", len(identities), len(gallery.problems), len(records))
    t0 = time.perf_counter()
    templates = plain_templates(engine, gallery.entries)
    rows = [IndexRow(e.identity, e.sha256, str(e.image_path)) for e in gallery.entries]
    index = GalleryIndex.build(template_family(engine.recognizer), engine.recognizer.weights_sha256, rows, templates,
                               kind="flat")
    index_s = time.perf_counter() - t0

    stage1_rank, exhaustive, truths, names, faces = [], [], [], [], []
    stage1_s, search_s = 0.0, 0.0
    for n, record in enumerate(records):
        probe = load_image(record.path)
        face, _ = choose_face(engine.detect(probe).faces, record.face)
        truth = record.image.identity
        if face is None or truth not in identities:
            stage1_rank.append(0)
            exhaustive.append(None)
            truths.append(truth)
            names.append(record.image.name)
            faces.append(None)
            continue
        t = time.perf_counter()
        ranked = index.shortlist(probe_query(engine, probe, face), len(identities))
        stage1_s += time.perf_counter() - t
        order = [identity for identity, _ in ranked]
        stage1_rank.append(order.index(truth) + 1)
        t = time.perf_counter()
        result = engine.search(probe, gallery, face=face)
        search_s += time.perf_counter() - t
        exhaustive.append(dict(result.ranking))
        truths.append(truth)
        names.append(record.image.name)
        faces.append((probe, face, order))
        if (n + 1) % 10 == 0:
            log.info("%d/%d probes", n + 1, len(records))

    # The identity that every K below relies on: two-stage == exhaustive restricted to the shortlist.
    checked = 0
    for probe_face, scores in zip(faces, exhaustive):
        if probe_face is None or checked >= args.check:
            continue
        probe, face, order = probe_face
        two = shortlist_search(engine, index, probe, gallery, num_shortlist=10, face=face)
        expected = sorted(((i, scores[i]) for i in order[:10]), key=lambda kv: (-kv[1], kv[0]))
        got = list(two.result.ranking)
        if [i for i, _ in got] != [i for i, _ in expected] or not np.allclose(
                [s for _, s in got], [s for _, s in expected], atol=1e-5):
            raise RuntimeError(f"two-stage ranking differs from the restricted exhaustive ranking: {got[:3]} vs "
                               f"{expected[:3]}")
        checked += 1

    # Upper bound of the loss for a stronger stage 2 (e.g. the "standard" degradation budget) without its
    # exhaustive search: a probe can only be lost at K if its true identity is outside the stage-1 top K AND
    # would be the exhaustive rank 1. Each probe outside the top ``bound_from_k`` is searched with the bound
    # budget against its true identity and the stage-1 top 3 only: if one of them beats the truth, the truth
    # is not the exhaustive rank 1 and the probe is never lost; otherwise it counts as lost (pessimistic).
    bound: dict[str, bool] = {}
    if args.bound_budget:
        strong = Engine(_config(args.bound_budget), cache_dir=root / "templates")
        for name, truth, rank, pf in zip(names, truths, stage1_rank, faces):
            if pf is None or rank <= args.bound_from_k:
                continue
            probe, face, order = pf
            rivals = [i for i in order[:4] if i != truth][:3]
            ranking = strong.search(probe, restrict_gallery(gallery, [truth, *rivals]), face=face).ranking
            bound[name] = ranking[0][0] == truth
            log.info("bound %s: stage-1 rank %d, truth %s its 3 stage-1 rivals under budget %s", name, rank,
                     "beats" if bound[name] else "loses to one of", args.bound_budget)

    num = len(records)
    ex_rank1 = sum(1 for s, t in zip(exhaustive, truths) if s is not None and max(s, key=lambda i: (s[i], i)) == t)
    table = []
    for k in [k for k in KS if k <= len(identities)] + ([len(identities)] if len(identities) not in KS else []):
        correct, recall = 0, 0
        for s, t, pf in zip(exhaustive, truths, faces):
            if s is None:
                continue
            shortlist = pf[2][:k]
            recall += t in shortlist
            best = max(shortlist, key=lambda i: (s[i], i))
            correct += best == t
        row = {"k": k, "stage1_recall": recall / num, "two_stage_rank1": correct / num,
               "loss_vs_exhaustive": (ex_rank1 - correct) / num}
        if args.bound_budget and k >= args.bound_from_k:
            lost = sum(1 for name, rank in zip(names, stage1_rank) if rank > k and bound.get(name, False))
            row[f"loss_bound_{args.bound_budget}"] = lost / num
        table.append(row)
    return {
        "benchmark": "lfw-xres shortlist",
        "width_px": args.width,
        "gallery_identities": len(identities),
        "gallery_problems": len(gallery.problems),
        "num_probes": num,
        "probe_sample": f"{num} of {len(full.probes)} probes drawn with numpy default_rng({args.seed})",
        "searched": sum(1 for s in exhaustive if s is not None),
        "config": engine.config.to_dict(),
        "exhaustive_rank1": ex_rank1 / num,
        "stage1_rank1": sum(1 for r in stage1_rank if r == 1) / num,
        "two_stage_identity_checked_probes": checked,
        "curve": table,
        "stage1_ranks": dict(zip(names, stage1_rank)),
        "bound": {"budget": args.bound_budget, "from_k": args.bound_from_k, "truth_beats_rivals": bound},
        "timing": {"enroll_s": round(enroll_s, 1), "index_build_s": round(index_s, 2),
                   "stage1_s_per_probe": round(stage1_s / max(1, len([s for s in exhaustive if s])), 3),
                   "exhaustive_search_s_per_probe": round(search_s / max(1, len([s for s in exhaustive if s])), 3)},
        "machine": _machine(),
    }


def _machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


# -- synthetic --------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stage2_costs(budget: str, cold_ids: tuple[int, int] = (2, 6), repeats: int = 3) -> dict:
    """Seconds of Engine.search on a real LFW gallery of a few identities, cold (every gallery hypothesis
    template computed) and warm (all from the template cache, as after enrollment with --warm-bins), each fitted
    as ``fixed + per_identity * identities`` from two gallery sizes (warm: best of ``repeats``)."""
    import tempfile

    torch.set_num_threads(1)
    full = lfw_xres_split(lfw_dir(), subset=max(cold_ids))
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(_config(budget), cache_dir=Path(tmp) / "warmup")
        gallery = engine.enroll(build_gallery_folder(full, Path(tmp) / "gallery"))
        # A real LFW-XRes probe (24 px face, nominal face width), so stage 2 runs all scales as in the curve.
        one = XResSplit(gallery=full.gallery, probes=full.probes[:1], people_list=full.people_list)
        record = materialize_probes(one, ProbeSpec(width_px=24, face_width_source="nominal"), Path(tmp) / "probes",
                                    None)[0]
        probe = load_image(record.path)
        faces = engine.detect(probe).faces
        face = faces[0] if faces else fallback_face(engine, probe.pixels, record.face)
        engine.search(probe, restrict_gallery(gallery, [gallery.entries[0].identity]), face=face)  # load models
        subs = [restrict_gallery(gallery, [e.identity for e in gallery.entries[:n]]) for n in cold_ids]
        cold, warm = [], []
        for n, sub in zip(cold_ids, subs):
            engine.cache.root = Path(tmp) / f"templates-{n}"
            t = time.perf_counter()
            engine.search(probe, sub, face=face)
            cold.append(time.perf_counter() - t)
        engine.cache.root = Path(tmp) / f"templates-{cold_ids[-1]}"  # holds every identity's templates
        for sub in subs:
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                engine.search(probe, sub, face=face)
                times.append(time.perf_counter() - t)
            warm.append(min(times))
    fit = {}
    for mode, times in (("cold", cold), ("warm", warm)):
        b = max(0.0, (times[1] - times[0]) / (cold_ids[1] - cold_ids[0]))
        fit[mode] = {"fixed_s": round(max(0.0, times[0] - b * cold_ids[0]), 3), "per_identity_s": round(b, 4),
                     "measured_s": [round(t, 3) for t in times]}
    return {"budget": budget, "identities": list(cold_ids), "probe_crop_px": face.width_px, **fit}


def run_synthetic(args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(1)
    stage2 = stage2_costs(args.budget) if args.stage2 else None
    rng = np.random.default_rng(args.seed)
    rows_out = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for kind in args.kinds.split(","):
            if kind == "flat" and size > args.flat_max:
                continue
            base = _rss_mb()
            templates = rng.standard_normal((size, 128), dtype=np.float32)
            rows = [IndexRow(f"id{i:07d}", "", "") for i in range(size)]
            t = time.perf_counter()
            index = GalleryIndex.build("synthetic", "0" * 64, rows, templates, kind=kind, seed=args.seed)
            build_s = time.perf_counter() - t
            mem_mb = faiss.serialize_index(index.index).nbytes / 2**20
            rss_mb = _rss_mb() - base
            # Planted mates: a query = a gallery template + noise of the same norm (correlation ~0.7).
            picks = rng.choice(size, size=args.queries, replace=False)
            noise = rng.standard_normal((args.queries, 128), dtype=np.float32)
            vec = centre_normalise(templates[picks])
            queries = centre_normalise(vec + args.mate_noise * centre_normalise(noise))
            default_nprobe = getattr(index.index, "nprobe", None)
            nprobes = [None] if kind == "flat" else sorted({default_nprobe, *[int(n) for n in args.nprobes.split(",")]})
            for nprobe in nprobes:
                if nprobe is not None:
                    index.index.nprobe = nprobe
                hits, lat = {k: 0 for k in (10, 50, 100)}, []
                index.shortlist(queries[:1], args.k)  # warm-up
                for q, p in zip(queries, picks):
                    t = time.perf_counter()
                    short = index.shortlist(q[None], args.k)
                    lat.append(time.perf_counter() - t)
                    ids = [int(i[2:]) for i, _ in short]
                    for k in hits:
                        hits[k] += int(p) in ids[:k]
                lat_ms = np.asarray(lat) * 1e3
                row = {"identities": size, "kind": index.kind, "nlist": getattr(index.index, "nlist", None),
                       "nprobe": nprobe, "default_nprobe": nprobe == default_nprobe, "build_s": round(build_s, 2),
                       "index_mb": round(mem_mb, 1), "rss_growth_mb": round(rss_mb, 1),
                       "shortlist_ms_median": round(float(np.median(lat_ms)), 2),
                       "shortlist_ms_p95": round(float(np.percentile(lat_ms, 95)), 2), "k": args.k,
                       **{f"mate_recall@{k}": hits[k] / args.queries for k in hits}}
                if stage2 is not None:
                    for mode in ("cold", "warm"):
                        s2 = stage2[mode]["fixed_s"] + stage2[mode]["per_identity_s"] * args.k
                        row[f"end_to_end_s_{mode}"] = round(row["shortlist_ms_median"] / 1e3 + s2, 2)
                rows_out.append(row)
                log.info("%s", row)
            del index, templates
    return {"benchmark": "synthetic shortlist", "dim": 128, "queries": args.queries, "faiss_threads": args.threads,
            "mate_noise": args.mate_noise,
            "faiss": faiss.__version__, "stage2": stage2, "rows": rows_out, "machine": _machine()}


def markdown(result: dict) -> str:
    """The result as the markdown table of docs/large_galleries.md."""
    if result["benchmark"] == "synthetic shortlist":
        lines = ["| Identities | Index | nlist / nprobe | Build s | Index MB | RSS growth MB | Shortlist ms median (p95) "
                 "| Mate in shortlist (K=50) | End-to-end s, warm stage 2 | End-to-end s, cold stage 2 |",
                 "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["rows"]:
            if r["kind"] == "ivf" and r["nprobe"] > r["nlist"]:
                continue
            nl = "" if r["kind"] == "flat" else f"{r['nlist']} / {r['nprobe']}"
            lines.append(f"| {r['identities']:,} | {r['kind']} | {nl} | {r['build_s']} | {r['index_mb']} | "
                         f"{r['rss_growth_mb']} | {r['shortlist_ms_median']} ({r['shortlist_ms_p95']}) | "
                         f"{r['mate_recall@50'] * 100:.1f} % | {r.get('end_to_end_s_warm', '')} | "
                         f"{r.get('end_to_end_s_cold', '')} |")
        return "\n".join(lines)
    bound = result["bound"]["budget"]
    head = "| K | Truth in shortlist | Two-stage rank-1 | Loss vs exhaustive (points) |"
    rule = "|---:|---:|---:|---:|"
    if bound:
        head += f" Loss bound, budget {bound} (points) |"
        rule += "---:|"
    lines = [head, rule]
    for r in result["curve"]:
        line = (f"| {r['k']} | {r['stage1_recall'] * 100:.1f} % | {r['two_stage_rank1'] * 100:.1f} % | "
                f"{r['loss_vs_exhaustive'] * 100:.2f} |")
        if bound:
            value = r.get(f"loss_bound_{bound}")
            line += " |" if value is None else f" <= {value * 100:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    lfw = sub.add_parser("lfw")
    lfw.add_argument("--probes", type=int, default=120)
    lfw.add_argument("--width", type=int, default=24)
    lfw.add_argument("--budget", default="none")
    lfw.add_argument("--seed", type=int, default=0)
    lfw.add_argument("--people", type=int, default=None, help="gallery: only the first N people (smoke runs)")
    lfw.add_argument("--check", type=int, default=5, help="probes whose real two-stage search is compared")
    lfw.add_argument("--cache", default="/tmp/shortlist_bench")
    lfw.add_argument("--bound-budget", default=None, help="bound the loss of a stage 2 with this budget")
    lfw.add_argument("--bound-from-k", type=int, default=25)
    lfw.add_argument("--out", type=Path, required=True)
    syn = sub.add_parser("synthetic")
    syn.add_argument("--sizes", default="10000,100000,1000000")
    syn.add_argument("--kinds", default="flat,ivf")
    syn.add_argument("--flat-max", type=int, default=1_000_000)
    syn.add_argument("--queries", type=int, default=200)
    syn.add_argument("--k", type=int, default=50)
    syn.add_argument("--nprobes", default="16,64,256", help="IVF lists probed, swept per IVF index")
    syn.add_argument("--mate-noise", type=float, default=1.0,
                     help="query = mate + this x unit noise (1.0: correlation ~0.71 with the mate)")
    syn.add_argument("--threads", type=int, default=1)
    syn.add_argument("--budget", default="standard")
    syn.add_argument("--stage2", action=argparse.BooleanOptionalAction, default=True)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    result = run_lfw(args) if args.mode == "lfw" else run_synthetic(args)
    result["command"] = " ".join(sys.argv)
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
