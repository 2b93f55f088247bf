"""Frozen configuration dataclasses. YAML/TOML/JSON only serialise them; constructors never take dicts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from forensic_face.engine.errors import ConfigError

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


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings. Tiny faces are found by upsampling the whole image before detection."""

    min_face_px: int = 12
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    # Images are upsampled (bicubic) so that a face of min_face_px becomes this wide: MTCNN's 12 px P-Net
    # window misses most faces under ~20 px.
    upsample_faces_to_px: int = 32
    max_upsample: float = 4.0
    #: Smallest face searched for in gallery portraits (the subject fills the frame; skips tiny-face work).
    gallery_min_face_px: int = 40
    crop_enlarge: float = 1.3


#: How a video track's frames are fused. ``score-mean``: each frame searched on its own, each identity's fused
#: scores averaged over the frames (quality-weighted). ``template-mean``: the frames' probe templates averaged per
#: scale and hypothesis (quality-weighted) and searched once (``Engine.search_views``).
VIDEO_FUSIONS = ("score-mean", "template-mean")

#: How a recognizer ensemble's member scores are combined (``fusion.combine_member_scores`` says what each does).
ENSEMBLE_RULES = ("mean", "znorm")


#: Engine settings added after searches were first recorded, with the value every search made before them used.
RECORD_LEGACY_VALUES: dict[str, Any] = {"flip_test": False}


@dataclass(frozen=True)
class EngineConfig:
    """Everything a search depends on. Stored with every result so a case can be replayed."""

    device: str = "auto"
    batch_size: int = 64
    seed: int = 0
    # The low-resolution-distilled recognizer with the flip test and face-sr-2-4: on the full LFW-XRes protocol
    # (24 px, 496 people, 1997 probes, standard budget, this fusion) rank-1 47.37% against 41.76% for the
    # previous default (dlib-resnet, face-sr, no flip test; McNemar p 1.65e-07, docs/results_default.md), and
    # 94.19% at full resolution (docs/recognizer.md). "dlib-resnet", "face-sr" and "bicubic" stay selectable.
    recognizer: str = "dlib-resnet-lr"
    recognizer_model_path: str | None = None
    #: For a recognizer ensemble (``recognizer = "a+b"``): how the members' fused scores are combined (one of
    #: ``ENSEMBLE_RULES``) and with which weights, one per member in order (empty: equal weights).
    ensemble_rule: str = "mean"
    ensemble_weights: tuple[float, ...] = ()
    #: Every template is made from the chip and its mirror image (``create_recognizer(flip_test=...)``).
    flip_test: bool = True
    # face-sr-2-4: the face-trained networks at 2x and 4x, bicubic at 8x, where the 8x network ranks lower
    # (docs/super_resolution.md).
    upsampler: str = "face-sr-2-4"
    precision: str = "fp32"
    scales: tuple[int, ...] = (2, 4, 8)
    num_blur_hypotheses: int = 16
    max_blur_sigma: float = 1.0
    budget: str = "standard"
    resolution_matching: bool = True
    # The paper's best with ArcFace was "S_max,S_add"; with the distilled recognizer (flip test, face-sr-2-4) on
    # the full LFW-XRes protocol (24 px, 496 people, 1997 probes) template concatenation ranks the true identity
    # first 51.6% of the time against 47.4% for S_add,S_add and 42.2% for S_max,S_add (docs/accuracy.md). The
    # paper's fusion stays one setting away.
    fusion: str = "T_concat"
    size_bin_px: int = 4
    top_k: int = 20
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    #: A video track is searched with its ``video_frames`` best frames, fused by ``video_fusion`` (one of
    #: VIDEO_FUSIONS; docs/video.md measures both on the LFW video protocol).
    video_frames: int = 5
    video_fusion: str = "score-mean"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.scales or any(s < 1 for s in self.scales):
            raise ConfigError(f"scales must be positive integers, got {self.scales}")
        if self.num_blur_hypotheses < 1:
            raise ConfigError(f"num_blur_hypotheses must be >= 1, got {self.num_blur_hypotheses}")
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be none, fast, standard or paper, got {self.budget!r}")
        if self.precision not in PRECISION_SETTINGS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, got {self.precision!r}")
        if self.size_bin_px < 1:
            raise ConfigError(f"size_bin_px must be >= 1, got {self.size_bin_px}")
        if self.ensemble_rule not in ENSEMBLE_RULES:
            raise ConfigError(f"ensemble_rule must be one of {', '.join(ENSEMBLE_RULES)}, got {self.ensemble_rule!r}")
        if any(not (w >= 0) for w in self.ensemble_weights) or (self.ensemble_weights and
                                                                 sum(self.ensemble_weights) <= 0):
            raise ConfigError(f"ensemble_weights must be non-negative numbers, not all zero, got "
                              f"{list(self.ensemble_weights)}")
        if self.video_frames < 1:
            raise ConfigError(f"video_frames must be >= 1, got {self.video_frames}")
        if self.video_fusion not in VIDEO_FUSIONS:
            raise ConfigError(f"video_fusion must be one of {', '.join(VIDEO_FUSIONS)}, got {self.video_fusion!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown engine settings: {sorted(unknown)}")
        values = dict(data)
        if "scales" in values:
            values["scales"] = tuple(int(s) for s in values["scales"])
        if "ensemble_weights" in values:
            values["ensemble_weights"] = tuple(float(w) for w in values["ensemble_weights"])
        if "detector" in values and isinstance(values["detector"], dict):
            det = dict(values["detector"])
            if "thresholds" in det:
                det["thresholds"] = tuple(float(t) for t in det["thresholds"])
            values["detector"] = DetectorConfig(**det)
        return cls(**values)

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
