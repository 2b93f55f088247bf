"""Recognizer interface and name registry.

A recognizer turns face crops into identity templates in two steps the engine calls in order::

    rec = create_recognizer("dlib-resnet", device, batch_size=64)
    chips = rec.prepare(images, landmarks)  # (N,3,H,W) [0,1] + (N,5,2) px  ->  (N,3,S,S)
    emb = rec.embed(chips)                  # (N,3,S,S) [0,1]  ->  (N,D) float32, L2-normalised
    rec = create_recognizer("dlib-resnet-lr", device, flip_test=True)  # templates of chip + its mirror image

``prepare`` aligns on the device in one batched warp ("template": similarity transform of the 5 landmarks onto
the model's template) or resizes the crop ("box"). ``embed`` normalises the input the way the model expects,
runs it in chunks of ``batch_size`` under :func:`torch.inference_mode` and L2-normalises the output. With
``flip_test`` it sums the raw outputs of each chip and its mirror image before normalising (the "flip test" of
face-recognition evaluations): at 24 px it lifts rank-1 by about 2.5 points (docs/recognizer.md), at twice the
network time. Templates made with and without it are not comparable, so :func:`template_family` tells caches
and indexes apart.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from forensic_face.engine.align import resize_crop, warp_to_template
from forensic_face.engine.check import check_image_batch, check_shape
from forensic_face.engine.errors import ConfigError

log = logging.getLogger(__name__)

AlignmentName = Literal["template", "box"]
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@runtime_checkable
class Recognizer(Protocol):
    """Face-template extractor. Attributes are recorded with every result."""

    name: str
    #: chip side in pixels that :meth:`embed` expects
    input_size: int
    embedding_dim: int
    #: "template" (similarity warp of 5 landmarks) or "box" (plain resize of the 1.3x crop)
    alignment: str
    #: SHA-256 of the model file the weights came from
    weights_sha256: str
    device: torch.device
    batch_size: int
    precision: str
    #: templates are the sum of the chip's and its mirror image's raw outputs, then normalised
    flip_test: bool

    def prepare(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` [0,1] and ``(N,5,2)`` px -> ``(N,3,S,S)`` [0,1] chips on :attr:`device`."""
        ...

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        """``(N,3,S,S)`` [0,1] -> ``(N,D)`` float32 L2-normalised embeddings on :attr:`device`."""
        ...

    def embed_faces(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` of :meth:`prepare`: ``(N,3,H,W)`` [0,1] faces and ``(N,5,2)`` px landmarks -> ``(N,D)``.
        What the engine calls, so an ensemble (each member aligning its own chips) is one recognizer to it."""
        ...


def template_family(recognizer: Recognizer) -> str:
    """The name under which templates are comparable: the recognizer's name, with ``+flip`` under the flip test
    and ``@bf16``/``@fp16`` when not computed in float32. Caches and shortlist indexes key on it together with
    the weights' SHA-256."""
    members = getattr(recognizer, "members", None)
    if members:  # an ensemble: its members' families, each with its own flip test
        return "&".join(template_family(m) for m in members)
    precision = getattr(recognizer, "precision", "fp32")
    return (recognizer.name + ("+flip" if getattr(recognizer, "flip_test", False) else "")
            + ("" if precision == "fp32" else f"@{precision}"))


def chip_geometry(recognizer: Recognizer) -> dict[str, object]:
    """How a recognizer cuts its chips (alignment, side, padding around the template): templates of chips cut
    another way are not comparable even with the same weights, so template caches key on it too."""
    return {"alignment": recognizer.alignment, "input_size": int(recognizer.input_size),
            "template_padding": float(getattr(recognizer, "template_padding", 0.0))}


def cpu_has_native_bf16() -> bool:
    """The processor has bfloat16 instructions (AVX-512 BF16 or AMX), so oneDNN runs bfloat16 convolutions
    natively: dlib-resnet-lr embeds 2.2x faster than in float32 on such a CPU with every template's cosine to its
    float32 twin >= 0.99996 (benchmarks/bench_precision.py). Without them bfloat16 is emulated, and slower."""
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def auto_precision(device: torch.device) -> str:
    """What the ``auto`` precision setting means on ``device``: bf16 on a CPU with native bfloat16, fp32
    elsewhere (CUDA half precision has not been measured against float32 here)."""
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """fp32 anywhere; bf16 on CUDA and on CPUs with native bfloat16 (:func:`cpu_has_native_bf16`); fp16 only on
    CUDA (CPU half-precision convolutions are slow or unsupported). ``auto`` is resolved by the caller."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cuda" or precision == "fp32":
        return PRECISIONS[precision]
    if precision == "bf16" and cpu_has_native_bf16():
        return PRECISIONS[precision]
    if precision == "bf16":
        raise ConfigError(f"precision bf16 on {device} needs a processor with bfloat16 instructions (AVX-512 BF16 "
                          "or AMX), which this one lacks (emulated, it would be slower than fp32); use fp32 or auto")
    raise ConfigError(f"precision {precision} needs a CUDA device, the recognizer runs on {device}; use fp32, bf16 "
                      "or auto")


class AlignedRecognizer:
    """Shared ``prepare`` (template warp or resize) and chunked, normalised ``embed`` on top of :meth:`_forward`.

    Subclasses set the class attributes and implement :meth:`_forward` (``(B,3,S,S)`` [0,1] chips in the compute
    dtype -> ``(B,D)`` raw embeddings).
    """

    name: str = ""
    input_size: int = 0
    embedding_dim: int = 0
    alignment: str = "template"
    #: template in [0,1] of the face region and its padding (alignment "template" only)
    template_unit: torch.Tensor | None = None
    template_padding: float = 0.0
    flip_test: bool = False

    def __init__(self, device: torch.device, batch_size: int = 64, precision: str = "fp32") -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.precision = auto_precision(self.device) if precision == "auto" else precision
        self.compute_dtype = resolve_precision(self.precision, self.device)
        self.weights_sha256 = ""

    def prepare(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        check_image_batch(images)
        check_shape(landmarks, [str(images.shape[0]), "5", "2"], "landmarks")
        images = images.to(self.device, torch.float32)
        with torch.inference_mode():
            if self.alignment == "box":
                return resize_crop(images, self.input_size)
            if self.template_unit is None:
                raise ConfigError(f"recognizer {self.name!r} uses template alignment but defines no template")
            chips = warp_to_template(images, landmarks.to(self.device), self.template_unit, self.input_size,
                                     self.template_padding)
            return chips.clamp_(0.0, 1.0)

    def embed_faces(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        return self.embed(self.prepare(images, landmarks))

    def _check_chips(self, chips: torch.Tensor) -> None:
        check_image_batch(chips, "chips")
        size = str(self.input_size)
        check_shape(chips, ["N", "3", size, size], "chips")

    def embed_raw(self, chips: torch.Tensor) -> torch.Tensor:
        """The model's output before L2 normalisation, float32 ``(N,D)`` (for equivalence checks)."""
        return self._summed_outputs(chips, mirrored=False)

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return F.normalize(self._summed_outputs(chips, mirrored=self.flip_test), dim=1)

    def _summed_outputs(self, chips: torch.Tensor, mirrored: bool) -> torch.Tensor:
        """Raw outputs in device batches of ``batch_size``; with ``mirrored`` each chip's output plus its mirror
        image's, the mirrors made per batch (half as many chips per batch, no copy of the whole input)."""
        self._check_chips(chips)
        step = max(1, self.batch_size // 2) if mirrored else self.batch_size
        outputs = []
        with torch.inference_mode():
            for start in range(0, chips.shape[0], step):
                batch = chips[start:start + step].to(self.device, self.compute_dtype)
                if not mirrored:
                    outputs.append(self._forward(batch).float())
                    continue
                both = self._forward(torch.cat([batch, batch.flip(-1)])).float()
                outputs.append(both[:batch.shape[0]] + both[batch.shape[0]:])
        if not outputs:
            return torch.zeros(0, self.embedding_dim, device=self.device)
        return torch.cat(outputs)

    def _forward(self, chips: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, device={self.device}, batch_size={self.batch_size}, "
                f"precision={self.precision!r}, weights_sha256={self.weights_sha256[:12]!r})")
