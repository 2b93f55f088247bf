"""What several commands share: engine settings from flags, a progress bar on stderr, the per-probe search
loop and how a search record is printed."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from forensic_face.engine import (
    DEFAULT_MAX_PIXELS,
    USER_SETTINGS,
    EngineConfig,
    ImageLoadError,
    NoFaceDetected,
    UserSetting,
    parse_scales,
    user_setting,
)
from forensic_face.faults import printable

log = logging.getLogger("forensic_face")


class ProgressBar:
    """The engine's ``progress(done, total, message)`` callback as a tqdm bar on stderr when stderr is a
    terminal (one bar per stage: a new total or a new message prefix before ":" starts one); otherwise an INFO
    log line at most every :attr:`log_every_s` seconds (shown with ``-v``), so logs of batch runs stay short."""

    log_every_s = 30.0

    def __init__(self, prefix: str = "", enabled: bool | None = None) -> None:
        self.prefix = prefix
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._stage = ""
        self._last_log = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        stage = message.split(":", 1)[0]
        if not self.enabled:
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s or done >= total:
                self._last_log = now
                log.info("%s%s %d/%d", self.prefix, message, done, total)
            return
        from tqdm import tqdm

        if self._bar is None or total != self._bar.total or stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=f"{self.prefix}{message[:40]}", file=sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=0.5)
        self._bar.set_description(f"{self.prefix}{message[:40]}", refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def enroll_with_progress(engine: Any, folder: Any) -> Any:
    """``engine.enroll(folder)`` with a progress bar on stderr."""
    bar = ProgressBar()
    try:
        return engine.enroll(folder, progress=bar)
    finally:
        bar.close()


def parse_weights(text: str) -> tuple[float, ...]:
    """``--ensemble-weights 2,1`` -> ``(2.0, 1.0)``: finite, non-negative, not all zero."""
    try:
        weights = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights must be comma-separated numbers such as 2,1, got {text!r}"
                                         ) from None
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise argparse.ArgumentTypeError(f"weights must be finite, non-negative and not all zero, got {text!r}")
    return weights


def parse_switches(text: str) -> tuple[bool, ...]:
    """``on,off`` -> ``(True, False)``."""
    values = [v.strip().lower() for v in text.split(",")]
    if any(v not in ("on", "off") for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated on/off, e.g. on,off; got {text!r}")
    return tuple(v == "on" for v in values)


def _flag_options(setting: UserSetting) -> dict[str, Any]:
    """The argparse options of a setting's flag, by how the setting is written (``UserSetting.entry``)."""
    entry = setting.entry
    if entry == "choice":
        return {"choices": list(setting.choices)}
    if entry == "on-off":
        return {"choices": ["on", "off"]}
    if entry == "off-flag":  # stores False, or None when not given (the settings' value stays)
        return {"action": "store_const", "const": False}
    return {"count": {"type": positive_int}, "whole": {"type": int},
            "weights": {"type": parse_weights, "metavar": "W1,W2,..."},
            "switches": {"type": parse_switches, "metavar": "on,off,..."}}.get(entry, {})


def add_setting_arguments(parser: argparse.ArgumentParser, names: Iterable[str] | None = None,
                          defaults: Mapping[str, str] | None = None) -> None:
    """The flags of the user settings ``names`` (default: every setting whose flag is not a command's own), as
    :data:`USER_SETTINGS` words them; :func:`settings_from_args` reads them back. A flag not given leaves the
    setting as it is, unless ``defaults`` gives it a value (as typed on the command line; shown in its help)."""
    chosen = [user_setting(n) for n in names] if names is not None else [
        s for s in USER_SETTINGS if not s.command_flag]
    defaults = defaults or {}
    for setting in chosen:
        default = defaults.get(setting.name)
        help_text = setting.help + (f"; default {default}" if default else "")
        parser.add_argument(setting.flag, dest=setting.flag_dest, default=default, help=help_text,
                            **_flag_options(setting))


def settings_from_args(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The user settings (field -> value) whose flags were given (or have a default), from ``names`` (default:
    all of :data:`USER_SETTINGS`)."""
    chosen = [user_setting(n) for n in names] if names is not None else USER_SETTINGS
    changes: dict[str, Any] = {}
    for setting in chosen:
        value = getattr(args, setting.flag_dest, None)
        if value is None:
            continue
        if setting.entry == "scales":
            value = parse_scales(value)
        elif setting.entry == "on-off":
            value = value == "on"
        changes[setting.name] = value
    return changes


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Engine settings shared by search-like commands; unset flags keep the user's saved settings."""
    add_setting_arguments(parser)


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The user's saved settings with the flags given on the command line applied."""
    from forensic_face.settings import load_settings

    return load_settings().replace(**settings_from_args(args))


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a time in a video, finite and >= 0 seconds."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a time of 0 seconds or more, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def utf8_text(text: str) -> str:
    """An argparse type: text that is valid UTF-8. Invalid bytes in a command line arrive as surrogate
    escapes, which could be neither stored in a case nor printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"is not valid UTF-8 text: '{printable(text)}'; retype it") from None
    return text


def utf8_path(text: str) -> Path:
    """An argparse type: a file name that is valid UTF-8, for files whose name a case records (SQLite text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"the file name '{printable(text)}' is not valid UTF-8 and cannot be "
                                         "recorded in a case; copy the file under a UTF-8 name") from None
    return Path(text)


def parse_box(text: str) -> list[float]:
    """An argparse type: a face box ``x1,y1,x2,y2`` in pixels from the image's top-left corner, with x2 > x1 and
    y2 > y1, no larger than the largest image that is decoded (:data:`DEFAULT_MAX_PIXELS`)."""
    try:
        values = [finite_float(v) for v in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--box must be 4 finite numbers x1,y1,x2,y2 in pixels, got {text!r}") \
            from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box must have 4 numbers x1,y1,x2,y2, got {text!r}")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError(f"--box must have x2 > x1 and y2 > y1 (top-left, then bottom-right "
                                         f"corner), got {text!r}")
    if min(values) < 0 or (x2 - x1) * (y2 - y1) > DEFAULT_MAX_PIXELS or max(values) > DEFAULT_MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"--box {text!r} lies outside any image this tool decodes (coordinates "
                                         f"from 0, at most {DEFAULT_MAX_PIXELS:,} pixels in the box)")
    return values


def add_examiner_argument(parser: argparse.ArgumentParser, what: str = "the audit trail records") -> None:
    """``--examiner NAME`` of a command that writes to a case."""
    parser.add_argument("--examiner", type=utf8_text, default=None,
                        help=f"who does this: the name {what} (default: 'examiner' in settings.toml, then the "
                             "case's examiner)")


def examiner_from_args(args: argparse.Namespace) -> str | None:
    """The examiner a command acts as: ``--examiner``, else the settings' ``examiner``; None leaves it to the case
    (its examiner). Never the operating-system user: on a shared or service account it names nobody."""
    from forensic_face.settings import load_examiner

    return getattr(args, "examiner", None) or load_examiner() or None


def print_case_line(record: dict[str, Any]) -> None:
    """Where a search was recorded (``--case``), if it was, and the examiner's decisions carried to it from an
    earlier search of the probe (or not carried, their identity being no longer a candidate)."""
    if not record.get("case"):
        return
    print(f"   Recorded in {printable(record['case']['path'])} as search #{record['case']['search_id']}.")
    carried = record["case"].get("carried_decisions") or {}
    for c in carried.get("carried", ()):
        print(f"   Decision carried from search #{c['from_search_id']} rank {c['from_rank']}: rank {c['rank']} "
              f"{printable(c['identity'])}: {c['decision']} ({printable(c['examiner'])}, {c['decided_utc']})")
    for c in carried.get("not_carried", ()):
        print(f"   Decision NOT carried (no longer a candidate): {printable(c['identity'])}: {c['decision']} "
              f"(search #{c['from_search_id']} rank {c['from_rank']}, {printable(c['examiner'])})")


def record_search_in_case(store: Any, engine: Any, result: Any, gallery: Any) -> tuple[Any, dict[str, Any]]:
    """Record ``result`` in the open case ``store`` as the window records a search: its candidates with their
    gallery variants' images (rendered here), the calibration that matches it. Returns the result with the images
    and the record fields (``case``: path and search id) that ``--json`` and the text output show."""
    from forensic_face.calibration import calibration_for_result

    result = engine.with_gallery_images(result, gallery)
    search_id = store.record_search(result, engine.config, gallery=gallery, calibration=calibration_for_result(result))
    return result, {"case": {"path": str(store.path), "search_id": search_id,
                             "carried_decisions": store.carried_decisions(search_id).to_json()}}


def run_with_case(args: argparse.Namespace, work: Callable[[argparse.Namespace, Any], int]) -> int:
    """``work(args, store)`` with the case ``--case`` names open (``store`` None without ``--case``). The case is
    opened before any work, so a missing, damaged or read-only case stops the command at once, as the examiner of
    :func:`examiner_from_args`, and closed afterwards."""
    if getattr(args, "case", None) is None:
        return work(args, None)
    from forensic_face.store.case_store import CaseStore

    with CaseStore.open(args.case, examiner_from_args(args)) as store:
        return work(args, store)


def search_probes(
    args: argparse.Namespace, engine: Any,
    search: Callable[[Any, Any, ProgressBar], tuple[Any, dict[str, Any]]],
) -> int:
    """The per-probe loop shared by ``search`` and ``search-large``: load each probe (with ``--box`` when given),
    run ``search(probe, face, progress) -> (SearchResult, extra record fields)``, add likelihood ratios, report
    each failure without stopping the batch, print text or one JSON document. Exit 1 if any probe failed."""
    from forensic_face.engine import load_image, manual_face

    records: list[dict[str, Any]] = []
    failed = 0
    bar = ProgressBar()
    for path in args.probes:
        record: dict[str, Any] = {"probe": str(path), "sha256": None, "face": None, "error": None,
                                  "candidates": [], "calibration": None, "open_set": None}
        try:
            probe = load_image(path)
            record["sha256"] = probe.sha256
            face = manual_face(probe.pixels, args.box, engine.detector) if args.box else None
            result, extra = search(probe, face, bar)
            record = result.to_json(top=args.top)
            add_likelihood_ratios(record, result)
            record.update(extra)
        except (ImageLoadError, NoFaceDetected) as exc:
            failed += 1
            record["error"] = str(exc)
        finally:
            bar.close()
        records.append(record)
        if not args.json:
            print_search_record(record)
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failed else 0


def print_search_record(record: dict[str, Any]) -> None:
    """One probe's search record as text (what ``--json`` would print as a document)."""
    print(f"== {printable(record['probe'])}")
    if record["error"]:
        print(f"   ERROR: {printable(record['error'])}")
        return
    print("   Candidates are investigative leads for human review, not identifications.")
    from forensic_face.calibration import format_lr

    cal = record.get("calibration")
    for c in record["candidates"]:
        lr = "" if c.get("lr") is None else f"  LR {format_lr(c['lr'])} ({c['verbal']})"
        members = "".join(f"  {name} {score:+.4f}" for name, score in c.get("member_scores", {}).items())
        print(f"   {c['rank']:>3}  {c['score']:+.4f}  {printable(c['identity'])}  ({printable(c['image'])}){lr}"
              f"{members}")
    if cal is None:
        reason = record.get("no_calibration_reason") or "no calibration matches these settings"
        print(f"   No likelihood ratios: {reason}.")
    else:
        print(f"   LRs: {cal['band_px']} px calibration (held-out Cllr {cal['cllr']:.3f}). {cal['caveat']}")
    if record.get("open_set"):
        print(f"   Open set: {record['open_set']['text']}")
    print_case_line(record)
    if record.get("shortlist"):
        sl = record["shortlist"]
        print(f"   (Meet-in-the-middle on a shortlist of {sl['k']} of {sl['index_rows']} indexed "
              f"portraits' identities; identities outside it were not compared in full)")


def add_likelihood_ratios(record: dict[str, Any], result: Any) -> None:
    """Add ``lr``/``log10_lr``/``verbal`` to each candidate of ``record`` and a ``calibration`` summary, from the
    shipped calibration matching the search's settings and face width; all ``None`` when none matches. Add the
    open-set cue (``open_set``: may the person not be in the gallery?), or why there is none."""
    from forensic_face.calibration import (
        CALIBRATION_CAVEAT,
        calibration_for_result,
        lr_record,
        why_no_calibration,
    )

    cal = calibration_for_result(result)
    record["no_calibration_reason"] = why_no_calibration(result) if cal is None else None
    for c in record["candidates"]:
        c.update(lr_record(cal, c["score"]))
    record["calibration"] = None if cal is None else {
        "band_px": cal.band_px, "cllr": round(cal.cllr, 4), "cllr_min": round(cal.cllr_min, 4),
        "conditions": cal.conditions, "caveat": CALIBRATION_CAVEAT}
    from forensic_face.calibration.open_set import open_set_cue

    record["open_set"] = open_set_cue(result).to_json()
