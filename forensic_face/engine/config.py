"""Frozen configuration dataclasses. YAML/TOML/JSON only serialise them; constructors never take dicts."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from forensic_face.engine.errors import ConfigError

log = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]
BudgetName = Literal["none", "fast", "standard", "paper"]
#: The gallery degradation budgets (:func:`forensic_face.engine.degradations.select_paths`), cheapest first.
BUDGETS: tuple[str, ...] = get_args(BudgetName)
#: ``auto``: bfloat16 on a processor with native bfloat16 instructions (AVX-512 BF16 or AMX), float32 elsewhere
#: (``recognizers.base.auto_precision``).
PrecisionName = Literal["fp32", "fp16", "bf16", "auto"]
PRECISION_SETTINGS: tuple[str, ...] = get_args(PrecisionName)


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda`` (or ``cuda:N``) to a :class:`torch.device`; auto picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was requested but no CUDA GPU is available; use 'auto' or 'cpu'")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; expected auto, cpu or cuda")


def _bounded(low: float | None = None, high: float | None = None, **more: Any) -> dict[str, Any]:
    """Field metadata read by :func:`check_setting`: inclusive bounds of a number (of each item of a list)."""
    return {"min": low, "max": high, **more}


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings. Tiny faces are found by upsampling the whole image before detection."""

    min_face_px: int = field(default=12, metadata=_bounded(1))
    thresholds: tuple[float, float, float] = field(default=(0.6, 0.7, 0.7), metadata=_bounded(0.0, 1.0))
    # Images are upsampled (bicubic) so that a face of min_face_px becomes this wide: MTCNN's 12 px P-Net
    # window misses most faces under ~20 px.
    upsample_faces_to_px: int = field(default=32, metadata=_bounded(1))
    max_upsample: float = field(default=4.0, metadata=_bounded(1.0))
    #: Smallest face searched for in gallery portraits (the subject fills the frame; skips tiny-face work).
    gallery_min_face_px: int = field(default=40, metadata=_bounded(1))
    crop_enlarge: float = field(default=1.3, metadata=_bounded(1.0))

    def __post_init__(self) -> None:
        check_fields(self)


#: How a video track's frames are fused. ``score-mean``: each frame searched on its own, each identity's fused
#: scores averaged over the frames (quality-weighted). ``template-mean``: the frames' probe templates averaged per
#: scale and hypothesis (quality-weighted) and searched once (``Engine.search_views``).
VIDEO_FUSIONS = ("score-mean", "template-mean")

#: How a recognizer ensemble's member scores are combined (``fusion.combine_member_scores`` says what each does).
ENSEMBLE_RULES = ("mean", "znorm")

#: Largest probe magnification a setting may ask for (``--scales`` always refused more).
MAX_SCALE = 16


#: Engine settings added after searches were first recorded, with the value every search made before them used.
RECORD_LEGACY_VALUES: dict[str, Any] = {"flip_test": False}


@dataclass(frozen=True)
class EngineConfig:
    """Everything a search depends on. Stored with every result so a case can be replayed.

    Each field's type and metadata (bounds, choices) are its rule: :func:`check_fields` checks them whenever a
    config is made, and :meth:`from_dict` turns a settings file or a record into one with the same checks."""

    device: str = field(default="auto", metadata={"pattern": r"auto|cpu|cuda(:\d+)?",
                                                  "allowed": "auto, cpu, cuda or cuda:N"})
    batch_size: int = field(default=64, metadata=_bounded(1))
    seed: int = field(default=0, metadata=_bounded(0, 2**32 - 1))
    # The low-resolution-distilled recognizer with the flip test and face-sr-2-4: on the full LFW-XRes protocol
    # (24 px, 496 people, 1997 probes, standard budget, this fusion) rank-1 47.37% against 41.76% for the
    # previous default (dlib-resnet, face-sr, no flip test; McNemar p 1.65e-07, docs/results_default.md), and
    # 94.19% at full resolution (docs/recognizer.md). "dlib-resnet", "face-sr" and "bicubic" stay selectable.
    recognizer: str = "dlib-resnet-lr"
    recognizer_model_path: str | None = None
    #: For a recognizer ensemble (``recognizer = "a+b"``): how the members' fused scores are combined (one of
    #: ``ENSEMBLE_RULES``) and with which weights, one per member in order (empty: equal weights). znorm: on the
    #: first 200 LFW-XRes people dlib-resnet-lr+faceres ranked 66.7 % first with it against 59.3 % with the plain
    #: mean (73 against 8 probes, McNemar p 3e-14; docs/accuracy.md).
    ensemble_rule: str = field(default="znorm", metadata={"choices": ENSEMBLE_RULES})
    ensemble_weights: tuple[float, ...] = field(default=(), metadata=_bounded(0.0))
    #: The flip test per ensemble member, in order (empty: ``flip_test`` for every member). A costly member
    #: (faceres: 4.5x dlib-resnet-lr's time per chip) can skip it.
    ensemble_flip_test: tuple[bool, ...] = ()
    #: Every template is made from the chip and its mirror image (``create_recognizer(flip_test=...)``).
    flip_test: bool = True
    # face-sr-2-4: the face-trained networks at 2x and 4x, bicubic at 8x, where the 8x network ranks lower
    # (docs/super_resolution.md).
    upsampler: str = "face-sr-2-4"
    precision: str = field(default="fp32", metadata={"choices": PRECISION_SETTINGS})
    scales: tuple[int, ...] = field(default=(2, 4, 8), metadata=_bounded(1, MAX_SCALE, min_items=1))
    num_blur_hypotheses: int = field(default=16, metadata=_bounded(1))
    max_blur_sigma: float = field(default=1.0, metadata=_bounded(0.0))
    budget: str = field(default="standard", metadata={"choices": BUDGETS})
    resolution_matching: bool = True
    # The paper's best with ArcFace was "S_max,S_add"; with the distilled recognizer (flip test, face-sr-2-4) on
    # the full LFW-XRes protocol (24 px, 496 people, 1997 probes) template concatenation ranks the true identity
    # first 51.6% of the time against 47.4% for S_add,S_add and 42.2% for S_max,S_add (docs/accuracy.md). The
    # paper's fusion stays one setting away.
    fusion: str = "T_concat"
    size_bin_px: int = field(default=4, metadata=_bounded(1))
    top_k: int = field(default=20, metadata=_bounded(1))
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    #: A video track is searched with its ``video_frames`` best frames, fused by ``video_fusion`` (one of
    #: VIDEO_FUSIONS; docs/video.md measures both on the LFW video protocol).
    video_frames: int = field(default=5, metadata=_bounded(1))
    video_fusion: str = field(default="score-mean", metadata={"choices": VIDEO_FUSIONS})

    def __post_init__(self) -> None:
        check_fields(self)
        if self.ensemble_weights and sum(self.ensemble_weights) <= 0:
            raise ConfigError(f"ensemble_weights = {list(self.ensemble_weights)} is not allowed: the weights may not "
                              "all be zero")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], ignore_unknown: bool = False) -> EngineConfig:
        """A config from its dict form (a settings table, a stored record): lists become tuples, whole numbers
        in number fields become floats, nested tables become :class:`DetectorConfig`. A bad value or type is a
        :class:`ConfigError` naming the setting, the value and what is allowed; so is an unknown setting,
        unless ``ignore_unknown`` (then it is logged and skipped: a settings file of a newer version)."""
        return typing.cast(EngineConfig, _from_mapping(cls, data, "", ignore_unknown))

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> EngineConfig:
        """A config stored with a search: settings added after such records were first written take the value
        those searches ran with (``RECORD_LEGACY_VALUES``), not today's default, so a replay repeats them."""
        return cls.from_dict({**RECORD_LEGACY_VALUES, **data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON; keys caches and audit entries."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def replace(self, **changes: Any) -> EngineConfig:
        return dataclasses.replace(self, **changes)


# -- the settings the examiner chooses: one table that the command line and the Settings dialog are built from -----

#: Devices offered by name (``cuda:N`` can still be written in settings.toml).
DEVICES: tuple[str, ...] = get_args(DeviceName)

#: How a user setting is written. ``choice``: one of the setting's ``choices``; ``name``: a registered name (the
#: dialog lists the registry); ``count``: a whole number of 1 or more; ``whole``: any whole number; ``scales``:
#: magnifications such as "2, 4, 8" (:func:`parse_scales`); ``weights``: numbers such as "2,1"; ``switches``:
#: on/off per ensemble member such as "on,off"; ``on-off``: one switch; ``off-flag``: a flag that turns the setting
#: off; ``file``: a file name (the dialog offers Browse).
SettingEntry = Literal["choice", "name", "count", "whole", "scales", "weights", "switches", "on-off", "off-flag",
                       "file"]


@dataclass(frozen=True)
class UserSetting:
    """One :class:`EngineConfig` field the examiner chooses, and how each front end offers it. Its settings.toml
    key is ``name`` (the ``[engine]`` table is :meth:`EngineConfig.to_dict`)."""

    name: str
    entry: SettingEntry
    #: Command-line flag and its help; ``dest`` when the flag's value is stored under another name.
    flag: str
    help: str
    dest: str | None = None
    #: The flag is added by the commands it belongs to (search-video's ``--frames``; ``--top``, whose default and
    #: help each command words), not by ``add_engine_arguments``; all read it back the same way.
    command_flag: bool = False
    #: The Settings dialog's row; ``None``: the setting is not in the dialog.
    label: str | None = None
    tooltip: str = ""
    #: A switch's text beside its check box; a file's placeholder.
    hint: str = ""
    choices: tuple[str, ...] = ()
    #: The largest number the dialog's spin box offers for a ``count``.
    most: int = 0

    @property
    def flag_dest(self) -> str:
        """Where argparse stores the flag's value."""
        return self.dest or self.flag.removeprefix("--").replace("-", "_")


#: The user-settable engine settings, in the order the Settings dialog shows them; the rest of :class:`EngineConfig`
#: is set in settings.toml or by the benchmarks only.
USER_SETTINGS: tuple[UserSetting, ...] = (
    UserSetting("device", "choice", "--device", "compute device (default: auto)", choices=DEVICES, label="Device"),
    UserSetting("recognizer", "name", "--recognizer",
                "face recognizer, e.g. dlib-resnet, or an ensemble such as dlib-resnet-lr+faceres", label="Recognizer"),
    UserSetting("recognizer_model_path", "file", "--recognizer-model", "model file for recognizers that need one",
                dest="recognizer_model", label="Recognizer model file", hint="shipped model (verified SHA-256)"),
    UserSetting("flip_test", "on-off", "--flip-test",
                "templates of each face and its mirror image, summed (twice the recognizer time)", label="Flip test",
                hint="Also read each face mirrored (flip test; twice the recognizer time)"),
    UserSetting("upsampler", "name", "--upsampler", "probe upsampler: face-sr or bicubic", label="Upsampler"),
    UserSetting("budget", "choice", "--budget",
                "gallery degradation budget: none, fast (11 paths), standard, paper (all 1,463)", choices=BUDGETS,
                label="Gallery degradation budget"),
    UserSetting("scales", "scales", "--scales", "comma-separated probe magnifications, e.g. 2,4,8", label="Scales",
                tooltip="Magnification factors of the probe, e.g. 2, 4, 8"),
    UserSetting("fusion", "name", "--fusion",
                f"fusion, e.g. {EngineConfig.fusion} (default), S_max,S_add (the paper's), S_add,S_add, T_add",
                label="Fusion"),
    UserSetting("num_blur_hypotheses", "count", "--hypotheses", "blur hypotheses per scale (paper: 16)",
                label="Blur hypotheses per scale", most=64,
                tooltip="Probe hypotheses per scale: Gaussian pre-blur sigma from 0 to the maximum"),
    UserSetting("batch_size", "count", "--batch-size", "images per batch on the device", label="Batch size", most=4096),
    UserSetting("top_k", "count", "--top", "candidates to list", dest="top", command_flag=True,
                label="Candidates shown (top-N)", most=1000),
    UserSetting("video_frames", "count", "--frames",
                "best frames of the track to search and fuse (default: the settings' video_frames, 5)",
                dest="video_frames", command_flag=True, label="Video: frames fused per track", most=50,
                tooltip="A video track is searched with this many of its best frames (by face quality)"),
    UserSetting("video_fusion", "choice", "--video-fusion",
                "score-mean: each frame searched, scores averaged; template-mean: the frames' templates averaged and "
                "searched once (both weighted by face quality; default: the settings' video_fusion)",
                choices=VIDEO_FUSIONS, command_flag=True, label="Video: frame fusion",
                tooltip="score-mean: each frame searched, scores averaged; template-mean: the frames' templates "
                        "averaged, searched once (both weighted by face quality)"),
    UserSetting("ensemble_rule", "choice", "--ensemble-rule",
                "for a recognizer ensemble (e.g. dlib-resnet-lr+faceres): z-normalise each member's fused scores over "
                "the gallery, then average (znorm, the default: ranks best), or average them as they are (mean: a "
                "score that does not depend on the rest of the gallery)", choices=ENSEMBLE_RULES),
    UserSetting("ensemble_weights", "weights", "--ensemble-weights",
                "one weight per ensemble member, in the order named (default: equal)"),
    UserSetting("ensemble_flip_test", "switches", "--ensemble-flip-test",
                "the flip test per ensemble member, in the order named (default: --flip-test for all); e.g. on,off "
                "skips it for a costly second network"),
    UserSetting("resolution_matching", "off-flag", "--no-resolution-matching",
                "compare gallery hypotheses at their own size (ablation)"),
    UserSetting("precision", "choice", "--precision",
                "recognizer arithmetic: fp32, bf16 (CUDA, or a CPU with AVX-512 BF16/AMX: about twice as fast), fp16 "
                "(CUDA), auto (bf16 where the CPU has it, else fp32)", choices=PRECISION_SETTINGS),
    UserSetting("seed", "whole", "--seed", "seed of every random choice (default 0)"),
)


def user_setting(name: str) -> UserSetting:
    """The :data:`USER_SETTINGS` entry of field ``name``."""
    for setting in USER_SETTINGS:
        if setting.name == name:
            return setting
    raise KeyError(f"{name!r} is not a user setting; known: {', '.join(s.name for s in USER_SETTINGS)}")


def parse_scales(text: str) -> tuple[int, ...]:
    """``"2, 4 8"`` -> ``(2, 4, 8)``; raises ConfigError with a readable message."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        scales = tuple(sorted({int(p) for p in parts}))
    except ValueError:
        raise ConfigError(f"scales must be whole numbers such as '2, 4, 8', got {text!r}") from None
    check_setting(EngineConfig, "scales", scales)
    return scales


# -- the checks every config field gets from its type and metadata ------------------------------------------------

_TYPE_WORDS: dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # evaluated once per class: every config made is checked


def _allowed(hint: Any, meta: Mapping[str, Any]) -> str:
    """What a field accepts, in words, for messages."""
    if "allowed" in meta:
        return str(meta["allowed"])
    if "choices" in meta:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    low, high = meta.get("min"), meta.get("max")
    bounds = (f" from {low} to {high}" if low is not None and high is not None
              else f" of at least {low}" if low is not None else f" of at most {high}" if high is not None else "")
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        count = "" if items[-1] is Ellipsis else f"{len(items)} "
        return f"a list of {count}{_TYPE_WORDS[items[0]].removeprefix('a ')}s{bounds}, e.g. {list(_example(hint))}"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_allowed(inner, meta)} (or leave it out)"
    if dataclasses.is_dataclass(hint):
        return "a table with " + ", ".join(f.name for f in dataclasses.fields(hint))
    return _TYPE_WORDS[hint] + bounds


def _example(hint: Any) -> tuple[Any, ...]:
    items = typing.get_args(hint)
    return (2, 4, 8) if items[-1] is Ellipsis else tuple(0.5 for _ in items)


def _valid(value: Any, hint: Any, meta: Mapping[str, Any]) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(value is None if a is type(None) else _valid(value, a, meta) for a in typing.get_args(hint))
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, tuple) or len(value) < meta.get("min_items", 0):
            return False
        if items[-1] is not Ellipsis and len(value) != len(items):
            return False
        return all(_valid(v, items[0], meta) for v in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real if hint is float else numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        low, high = meta.get("min"), meta.get("max")
        return (low is None or value >= low) and (high is None or value <= high)
    if hint is str:
        if not isinstance(value, str):
            return False
        if "choices" in meta and value not in meta["choices"]:
            return False
        return "pattern" not in meta or re.fullmatch(meta["pattern"], value) is not None
    raise TypeError(f"no check for settings of type {hint!r}")  # a new field type needs a rule here


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_setting(cls: type, name: str, value: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` suits field ``name`` of config class ``cls`` (its type, its
    bounds and choices); the message names the setting, the value and what is allowed."""
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    hint = _field_hints(cls)[name]
    if not _valid(value, hint, spec.metadata):
        raise ConfigError(f"{prefix}{name} = {_shown(value)} is not allowed: expected {_allowed(hint, spec.metadata)}")


def check_fields(config: Any) -> None:
    """:func:`check_setting` for every field of a config dataclass instance."""
    for spec in dataclasses.fields(config):
        check_setting(type(config), spec.name, getattr(config, spec.name))


def _from_mapping(cls: type, data: Any, prefix: str, ignore_unknown: bool) -> Any:
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or "engine"
        raise ConfigError(f"{where} = {_shown(data)} is not allowed: expected {_allowed(cls, {})}")
    hints = _field_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        message = f"unknown setting(s) {', '.join(prefix + str(u) for u in unknown)}; known: {', '.join(names)}"
        if not ignore_unknown:
            raise ConfigError(message)
        log.warning("ignoring %s", message)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in data:
            continue
        value, hint = data[spec.name], hints[spec.name]
        if dataclasses.is_dataclass(hint):
            value = _from_mapping(hint, value, f"{prefix}{spec.name}.", ignore_unknown)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            item = typing.get_args(hint)[0]
            value = tuple(float(v) if item is float and _is_whole(v) else v for v in value)
        elif hint is float and _is_whole(value):
            value = float(value)
        check_setting(cls, spec.name, value, prefix)
        values[spec.name] = value
    return cls(**values)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
