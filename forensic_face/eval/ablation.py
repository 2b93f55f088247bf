"""The paper's Table 2 ablation on LFW-XRes, every row an :class:`EngineConfig` setting, and docs/results.md.

Rows (paper section 4.2):

* **Baseline**: no SR. The probe crop goes straight to the recognizer (scale 1, one hypothesis, no blur);
  the gallery is undegraded and not resolution-matched.
* **+Single-hypothesis SR** at 2x/4x/8x: the SR network once, ``num_blur_hypotheses=1`` (sigma 0).
* **+Multi-hypothesis SR** at 2x/4x/8x: 16 pre-blurs sigma 0..1, the best hypothesis per identity (S_max).
* **+Resolution matching** at 2x/4x/8x: the gallery is brought to the probe's super-resolved size.
* **+Gallery degradations** at 2x/4x/8x: degraded gallery hypotheses (the budget), fused by S_max.
* **+Multi-scale accumulation**: scales (2, 4, 8) with S_max, S_add, T_add, T_concat.
* **Final**: scales (2, 4, 8), S_max over gallery hypotheses then S_add (the paper's 93.53 % setting).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensic_face.engine import ConfigError, EngineConfig, ForensicFaceError
from forensic_face.eval.cmc import plot_cmc
from forensic_face.eval.runner import (
    EvalSettings,
    PreparedProtocol,
    RunResult,
    evaluate,
    write_run,
)

log = logging.getLogger(__name__)

SCALES: tuple[int, ...] = (2, 4, 8)
MULTI_SCALE_FUSIONS: tuple[str, ...] = ("S_max", "S_add", "T_add", "T_concat")


@dataclass(frozen=True)
class AblationRow:
    """One cell of Table 2: ``group`` is the table row, ``column`` the scale or fusion."""

    key: str
    group: str
    column: str
    config: EngineConfig


def ablation_rows(base: EngineConfig, upsampler: str, budget: str, num_hypotheses: int = 16) -> list[AblationRow]:
    """Every cell of Table 2 as an engine setting derived from ``base`` (device, seed, batch size...)."""
    if budget == "none":
        raise ConfigError("the gallery-degradation rows need a budget other than 'none'")
    rows = [AblationRow("baseline", "Baseline", "-", base.replace(
        scales=(1,), num_blur_hypotheses=1, max_blur_sigma=0.0, upsampler="bicubic", budget="none",
        resolution_matching=False, fusion="S_max"))]
    single = dict(num_blur_hypotheses=1, max_blur_sigma=0.0, upsampler=upsampler, budget="none",
                  resolution_matching=False, fusion="S_max")
    multi = single | dict(num_blur_hypotheses=num_hypotheses, max_blur_sigma=1.0)
    matched = multi | dict(resolution_matching=True)
    degraded = matched | dict(budget=budget)
    for group, key, changes in (("+Single-hypothesis SR", "single", single),
                                ("+Multi-hypothesis SR", "multi", multi),
                                ("+Resolution matching", "rm", matched),
                                ("+Gallery degradations", "degr", degraded)):
        for s in SCALES:
            rows.append(AblationRow(f"{key}-{s}x", group, f"{s}x", base.replace(scales=(s,), **changes)))
    for fusion in MULTI_SCALE_FUSIONS:
        rows.append(AblationRow(f"ms-{fusion}", "+Multi-scale accumulation", fusion,
                                base.replace(scales=SCALES, **(degraded | dict(fusion=fusion)))))
    rows.append(AblationRow("final", "Final: S_max then S_add", "S_max,S_add",
                            base.replace(scales=SCALES, **(degraded | dict(fusion="S_max,S_add")))))
    return rows


def select_rows(rows: list[AblationRow], keys: str | None) -> list[AblationRow]:
    """The rows named in a comma list (e.g. ``baseline,final``), run in that order; all when ``keys`` is empty."""
    if not keys:
        return rows
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    known = {r.key for r in rows}
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise ConfigError(f"unknown ablation rows {unknown}; known: {', '.join(r.key for r in rows)}")
    by_key = {r.key: r for r in rows}
    return [by_key[k] for k in dict.fromkeys(wanted)]


@dataclass
class RowOutcome:
    row: AblationRow
    result: RunResult | None
    error: str = ""
    wall_s: float = 0.0


EngineFactory = Callable[[EngineConfig], Any]


def run_ablation(
    rows: Sequence[AblationRow],
    prepared: PreparedProtocol,
    make_engine: EngineFactory,
    out_dir: Path,
    progress_for: Callable[[AblationRow], Callable[[int, int, str], None] | None] | None = None,
    after_row: Callable[[list[RowOutcome]], None] | None = None,
) -> list[RowOutcome]:
    """Evaluate every row on the same prepared protocol; one failing row is recorded, not fatal."""
    outcomes: list[RowOutcome] = []
    for row in rows:
        t0 = time.perf_counter()
        log.info("ablation row %s (%s %s)", row.key, row.group, row.column)
        try:
            engine = make_engine(row.config)
            progress = progress_for(row) if progress_for is not None else None
            result = evaluate(engine, prepared, label=f"{row.group} {row.column}".replace(" -", ""),
                              progress=progress)
            write_run(result, out_dir / row.key)
            outcomes.append(RowOutcome(row, result, wall_s=time.perf_counter() - t0))
        except ForensicFaceError as exc:
            log.error("ablation row %s failed: %s", row.key, exc)
            outcomes.append(RowOutcome(row, None, error=str(exc), wall_s=time.perf_counter() - t0))
        _write_summary(outcomes, out_dir / "ablation.json")
        if after_row is not None:
            after_row(outcomes)
    return outcomes


def _write_summary(outcomes: Sequence[RowOutcome], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = []
    for o in outcomes:
        entry: dict[str, Any] = {"key": o.row.key, "group": o.row.group, "column": o.row.column,
                                 "wall_s": round(o.wall_s, 2), "config": o.row.config.to_dict()}
        if o.result is not None:
            entry |= o.result.rates() | {"counts": o.result.counts, "timing": o.result.timing}
        else:
            entry["error"] = o.error
        data.append(entry)
    path.write_text(json.dumps(data, indent=2))


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}"


def table2_markdown(outcomes: Sequence[RowOutcome]) -> str:
    """Rank-1 IR (%) in the layout of the paper's Table 2 (missing cells: not run; ``err``: failed)."""
    cells: dict[tuple[str, str], str] = {}
    for o in outcomes:
        cells[(o.row.group, o.row.column)] = _pct(o.result.rates()["rank1"]) if o.result is not None else "err"
    lines = ["| Stage | 2x | 4x | 8x |", "|---|---:|---:|---:|"]
    if ("Baseline", "-") in cells:
        lines.append(f"| Baseline (no SR) | {cells[('Baseline', '-')]} | | |")
    for group in ("+Single-hypothesis SR", "+Multi-hypothesis SR", "+Resolution matching", "+Gallery degradations"):
        values = [cells.get((group, f"{s}x"), "") for s in SCALES]
        if any(values):
            lines.append(f"| {group} | " + " | ".join(values) + " |")
    ms = [cells.get(("+Multi-scale accumulation", f), "") for f in MULTI_SCALE_FUSIONS]
    out = "\n".join(lines)
    if any(ms):
        out += "\n\n| +Multi-scale accumulation (2x,4x,8x) | S_max | S_add | T_add | T_concat |\n"
        out += "|---|---:|---:|---:|---:|\n| rank-1 | " + " | ".join(ms) + " |"
    if ("Final: S_max then S_add", "S_max,S_add") in cells:
        out += f"\n\n**Final (2x,4x,8x; S_max then S_add): rank-1 {cells[('Final: S_max then S_add', 'S_max,S_add')]} %**"
    return out


def detail_markdown(outcomes: Sequence[RowOutcome]) -> str:
    """Every row with rank-1/5/10, what happened to the probes, and time."""
    lines = ["| Row | Setting | Rank-1 | Rank-5 | Rank-10 | Searched | No face | Fallback | Search s/probe | Row wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        c = o.row.config
        setting = (f"scales={','.join(map(str, c.scales))} hyp={c.num_blur_hypotheses} up={c.upsampler} "
                   f"budget={c.budget} rm={'on' if c.resolution_matching else 'off'} fusion={c.fusion}")
        if o.result is None:
            lines.append(f"| {o.row.key} | {setting} | error: {o.error.replace('|', '/')} | | | | | | | "
                         f"{o.wall_s:.0f} |")
            continue
        r = o.result.rates()
        n = o.result.counts
        searched = n.get("detected", 0) + n.get("detected-other", 0) + n.get("fallback", 0)
        lines.append(
            f"| {o.row.key} | {setting} | {_pct(r['rank1'])} | {_pct(r['rank5'])} | {_pct(r['rank10'])} | "
            f"{searched} | {n.get('no-face', 0)} | {n.get('fallback', 0)} | "
            f"{o.result.timing.get('search_s_per_probe', float('nan'))} | {o.wall_s:.0f} |"
        )
    return "\n".join(lines)


# What decides a result: the package, its shipped weights and its pinned dependencies. Outputs the benchmark
# itself rewrites while it runs (docs/results.md, the CMC plot) must not flag the run as "uncommitted".
_CODE_PATHS = ("forensic_face", "resources", "pyproject.toml")


def code_version() -> str:
    """forensic_face's version and, in a git checkout, the commit (and whether the code had changes)."""
    import subprocess

    import forensic_face

    root = Path(forensic_face.__file__).resolve().parent.parent
    version = f"forensic_face {forensic_face.__version__}"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", *_CODE_PATHS],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}, commit {commit[:12]}{' with uncommitted changes' if dirty else ''}"


def machine_info(device: str, code: str | None = None) -> dict[str, Any]:
    """Platform, CPU, thread and library versions of this run; ``code`` as :func:`code_version` gave it when the
    run started (default: now)."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "code": code or code_version(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def plot_ablation_cmc(outcomes: Sequence[RowOutcome], path: Path, title: str) -> Path | None:
    """CMC of the baseline, the best cell of each stage, and the final method."""
    best: dict[str, RowOutcome] = {}
    for o in outcomes:
        if o.result is None:
            continue
        current = best.get(o.row.group)
        if current is None or o.result.rates()["rank1"] > current.result.rates()["rank1"]:  # type: ignore[union-attr]
            best[o.row.group] = o
    if not best:
        return None
    curves = [(f"{o.row.group} {o.row.column}".replace(" -", ""), o.result.curve)  # type: ignore[union-attr]
              for o in best.values()]
    return plot_cmc(curves, path, title)


def write_results_doc(
    path: Path,
    outcomes: Sequence[RowOutcome],
    settings: EvalSettings,
    prepared: PreparedProtocol,
    command: str,
    full_command: str,
    machine: dict[str, Any],
    wall_s: float,
    budget: str,
    cmc_png: Path | None,
    pending: Sequence[str] = (),
    upsampler: str = "",
) -> Path:
    """Write docs/results.md: the tables, the CMC plot, the commands, the machine, wall time and budget."""
    num_probes = len(prepared.probes)
    full = settings.subset is None
    scope = ("the full protocol" if full else
             f"a SUBSET: the first {settings.subset} people of the protocol's 496")
    provenance: dict[str, Any] = {}
    for o in outcomes:
        if o.result is not None:
            provenance = o.result.provenance
    prov_lines = []
    for key in ("recognizer", "recognizer_sha256", "upsampler", "upsampler_sha256", "weights", "versions"):
        if key in provenance:
            prov_lines.append(f"- {key}: `{json.dumps(provenance[key], default=str)}`")
    if not prov_lines and provenance:
        prov_lines.append(f"- `{json.dumps(provenance, default=str)[:2000]}`")
    failed = [o for o in outcomes if o.result is None]
    text = f"""# LFW-XRes cross-resolution identification results

_Generated by `forensic_face.eval` (do not edit by hand; rerun the command below)._

Scope: **{scope}** — {len(prepared.split.gallery)} gallery portraits, {num_probes} probes, probe faces
**{settings.width_px} px** wide (MTCNN box width; camera `{settings.camera}`, face width from
`{settings.face_width_source}`), protocol seed {settings.seed}, detection fallback to the known face position
**{'on' if settings.fallback_known_face else 'off'}**. Degradation budget of the gallery rows: **{budget}**.
Upsampler of the "SR" rows: **{upsampler or 'see the settings column'}**{' (plain bicubic interpolation, NOT the face super-resolution network: the SR rows then measure multi-hypothesis upsampling, not learned SR)' if upsampler == 'bicubic' else ''}.
Searches ran with `top_k=1` (only `SearchResult.ranking`, which lists every identity, is scored).
{'' if full else chr(10) + '**These numbers are NOT the full benchmark**; the full run is the command under "Reproduce".' + chr(10)}
{'' if not pending else chr(10) + '**Rows not run (yet)**: ' + ', '.join(f'`{k}`' for k in pending) + '. The command was still running or was stopped when this was written.' + chr(10)}
Identification rates are over ALL probes: a probe whose face the detector did not find counts as a miss at
every rank. Rank-1/5/10 in %.

## Table 2 layout (rank-1 %)

{table2_markdown(outcomes)}

## Every row

{detail_markdown(outcomes)}

{'Rows that failed: ' + ', '.join(f'`{o.row.key}` ({o.error})' for o in failed) if failed else ''}

## CMC

{f'![CMC]({cmc_png.name})' if cmc_png is not None else '(no row finished)'}

## Protocol

- Gallery: the first image (by number) of each peopleDevTest person with at least two images, full resolution,
  enrolled once with `Engine.enroll` ({len(prepared.gallery.problems)} portraits could not be enrolled).
- Probes: every other image; the whole 250x250 image degraded by `forensic_face.surveillance.degrade_to_scale`
  so the face is {settings.width_px} px wide, seeded per image from (protocol seed, image name); detected with
  `Engine.detect` like any user's still (the detection on the known face position is used; {prepared.num_known_nominal}
  originals had no MTCNN face and used the nominal box).
- Scores: every probe's fused score against every gallery identity from `SearchResult.ranking`; ties count
  against the probe.

## Reproduce

This document:

```
{command}
```

The full benchmark (all 496 people, all rows):

```
{full_command}
```

## Run

- Wall time of the whole command: {wall_s / 60:.1f} min (gallery enrollment {prepared.enroll_s:.0f} s).
- Code: {machine.get('code', 'not recorded')}.
- Machine: {machine['platform']}, {machine['cpu']}, {machine['cpu_count']} CPUs (shared), torch {machine['torch']}
  with {machine['torch_threads']} thread(s), Python {machine['python']}, device `{machine['device']}`
  (CUDA: {machine['cuda']}).
- Models (from `Engine.provenance()`):
{chr(10).join(prov_lines) if prov_lines else '  (none recorded)'}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
