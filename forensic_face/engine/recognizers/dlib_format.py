"""Reader for dlib's binary serialization format, enough to load ``dlib_face_recognition_resnet_model_v1.dat``.

Written from dlib's documented format (``dlib/serialize.h``, ``dlib/cuda/tensor.h``, ``dlib/dnn/core.h``,
``dlib/dnn/layers.h``, ``dlib/dnn/input.h``, ``dlib/dnn/loss.h``); no dlib code is used or needed at run time.

Primitive encodings (all little-endian):

* integer: one control byte (low 4 bits = number of value bytes, bit 7 = negative), then the magnitude's
  bytes, least significant first;
* floating point: a (mantissa: int64, exponent: int16) pair of integers, value = mantissa * 2**exponent;
* bool: the ASCII byte ``'1'`` or ``'0'``;
* string: its length (integer), then the bytes;
* tensor (``resizable_tensor``): version integer 2, then n, k, nr, nc integers, then n*k*nr*nc raw float32;
* alias tensor: version integer 1, then n, k, nr, nc integers (a view into the layer's ``params`` tensor).

A network ``add_loss_layer<LOSS, add_layer<L_top, ... add_layer<L_1, INPUT>>>`` is written outside-in: the loss
layer's version and details, then each wrapper's version integer from the top layer down (``add_layer`` 2,
``add_tag_layer``/``add_skip_layer`` 1), then the bottom ``add_layer`` (version 3) with the input layer's and
first layer's details, then each remaining ``add_layer``'s details and state from the bottom up.

:func:`read_dlib_resnet_v1` walks that stream for the network ``anet_type`` of dlib's
``examples/dnn_face_recognition_ex.cpp`` and returns the weights as arrays named like the parameters of
:class:`~forensic_face.engine.recognizers.dlib_resnet.DlibResNet`. Every layer type and hyper-parameter is checked
against the expected network, so any other file fails with a :class:`ModelFileError` naming the file, the byte
offset and what was expected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensic_face.engine.errors import ModelFileError

log = logging.getLogger(__name__)

EXPECTED_FORMAT = "dlib's serialized anet_type (dlib_face_recognition_resnet_model_v1.dat, 128-D ResNet)"

# fc_ bias modes in dlib/dnn/layers.h: FC_HAS_BIAS = 0, FC_NO_BIAS = 1.
_FC_NO_BIAS = 1
# affine_ layer modes in dlib/dnn/layers.h (enum layer_mode): CONV_MODE = 0, FC_MODE = 1.
_AFFINE_CONV_MODE = 0


class DlibStreamReader:
    """Sequential reader of dlib's primitive encodings over an in-memory byte buffer."""

    def __init__(self, data: bytes, source: str | Path) -> None:
        self._data = memoryview(data)
        self.pos = 0
        self.source = str(source)

    # -- errors ---------------------------------------------------------------------------------------
    def fail(self, what: str) -> ModelFileError:
        return ModelFileError(
            f"{self.source}: {what} at byte {self.pos}; expected {EXPECTED_FORMAT}. The file is corrupt, truncated "
            "or a different dlib model; restore dlib_face_recognition_resnet_model_v1.dat (face_recognition_models)"
        )

    def _take(self, count: int) -> memoryview:
        if count < 0 or self.pos + count > len(self._data):
            raise self.fail(f"unexpected end of file (wanted {count} more bytes)")
        chunk = self._data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    # -- primitives -----------------------------------------------------------------------------------
    def read_int(self) -> int:
        control = self._take(1)[0]
        if control & 0x70:
            raise self.fail(f"invalid integer control byte 0x{control:02x}")
        size = control & 0x0F
        if size > 8:
            raise self.fail(f"integer of {size} bytes")
        value = int.from_bytes(self._take(size), "little", signed=False) if size else 0
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        return float(mantissa) * 2.0 ** exponent

    def read_bool(self) -> bool:
        byte = self._take(1)[0]
        if byte == ord("1"):
            return True
        if byte == ord("0"):
            return False
        raise self.fail(f"invalid bool byte 0x{byte:02x}")

    def read_string(self, max_len: int = 256) -> str:
        length = self.read_int()
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length}")
        raw = bytes(self._take(length))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII string {raw!r}") from None

    def expect_string(self, *allowed: str) -> str:
        start = self.pos
        value = self.read_string()
        if value not in allowed:
            self.pos = start
            raise self.fail(f"found {value!r}, expected {' or '.join(repr(a) for a in allowed)}")
        return value

    def expect_int(self, expected: int, what: str) -> None:
        start = self.pos
        value = self.read_int()
        if value != expected:
            self.pos = start
            raise self.fail(f"{what} is {value}, expected {expected}")

    def read_tensor(self) -> np.ndarray:
        version = self.read_int()
        if version != 2:
            raise self.fail(f"tensor version {version} (only version 2 is supported)")
        shape = tuple(self.read_int() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.read_int()
        if version != 1:
            raise self.fail(f"alias tensor version {version}, expected 1")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc


# ---------------------------------------------------------------------------------------------------------
# The expected network, bottom-up, as in dnn_face_recognition_ex.cpp:
#   anet_type = loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
#               max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>
#   ares<N>      = relu<add_prev1<block<N,1, tag1<x>>>>
#   ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<x>>>>>>>
#   block<N,s>   = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,s,s, x>>>>>>
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One wrapper in the serialized stack. ``kind`` is a dlib layer name; ``name`` our parameter prefix."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    name: str = ""
    num_filters: int = 0
    kernel: int = 0
    stride: int = 0
    padding: int = 0

    @property
    def is_add_layer(self) -> bool:
        return self.kind not in ("tag", "skip")


def _block_specs(prefix: str, filters: int, stride: int) -> list[LayerSpec]:
    first_pad = 0 if stride != 1 else 1  # dlib's con_ default: padding = stride != 1 ? 0 : size/2
    return [
        LayerSpec("con", f"{prefix}.conv1", filters, 3, stride, first_pad),
        LayerSpec("affine", f"{prefix}.affine1", filters),
        LayerSpec("relu"),
        LayerSpec("con", f"{prefix}.conv2", filters, 3, 1, 1),
        LayerSpec("affine", f"{prefix}.affine2", filters),
    ]


def _residual_specs(prefix: str, filters: int, downsample: bool) -> list[LayerSpec]:
    specs = [LayerSpec("tag")]
    specs += _block_specs(prefix, filters, 2 if downsample else 1)
    if downsample:
        specs += [LayerSpec("tag"), LayerSpec("skip"), LayerSpec("avg_pool", kernel=2, stride=2, padding=0)]
    specs += [LayerSpec("add_prev"), LayerSpec("relu")]
    return specs


#: (filters, downsample) of each residual unit from the input upwards: alevel4 .. alevel0.
RESIDUAL_UNITS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)

INPUT_SIZE = 150
EMBEDDING_DIM = 128


def anet_layer_specs() -> list[LayerSpec]:
    """The wrappers of ``anet_type`` from the first layer above the input to the fc layer (bottom-up)."""
    specs = [
        LayerSpec("con", "stem.conv", 32, 7, 2, 0),
        LayerSpec("affine", "stem.affine", 32),
        LayerSpec("relu"),
        LayerSpec("max_pool", kernel=3, stride=2, padding=0),
    ]
    for index, (filters, down) in enumerate(RESIDUAL_UNITS):
        specs += _residual_specs(f"units.{index}", filters, down)
    specs += [LayerSpec("avg_pool", kernel=0, stride=1, padding=0), LayerSpec("fc", "fc", EMBEDDING_DIM)]
    return specs


@dataclass
class DlibResNetFile:
    """Everything read from the .dat file: weights keyed by our parameter names, plus dlib's metadata."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    input_means: tuple[float, float, float] = (0.0, 0.0, 0.0)
    input_size: int = INPUT_SIZE
    loss_margin: float = 0.0
    loss_distance_threshold: float = 0.0


def _read_con(reader: DlibStreamReader, spec: LayerSpec, in_channels: int, out: DlibResNetFile) -> int:
    reader.expect_string("con_4", "con_5")
    version_start = reader.pos
    params = reader.read_tensor().reshape(-1)
    reader.expect_int(spec.num_filters, f"{spec.name}: number of filters")
    reader.expect_int(spec.kernel, f"{spec.name}: filter rows")
    reader.expect_int(spec.kernel, f"{spec.name}: filter columns")
    reader.expect_int(spec.stride, f"{spec.name}: stride y")
    reader.expect_int(spec.stride, f"{spec.name}: stride x")
    reader.expect_int(spec.padding, f"{spec.name}: padding y")
    reader.expect_int(spec.padding, f"{spec.name}: padding x")
    filters_shape = reader.read_alias_tensor()
    biases_shape = reader.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers (training only)
        reader.read_float()
    want_filters = (spec.num_filters, in_channels, spec.kernel, spec.kernel)
    if filters_shape != want_filters or biases_shape != (1, spec.num_filters, 1, 1):
        reader.pos = version_start
        raise reader.fail(f"{spec.name}: filter/bias shapes {filters_shape}/{biases_shape}, expected {want_filters}")
    num_weights = int(np.prod(want_filters))
    if params.size != num_weights + spec.num_filters:
        reader.pos = version_start
        raise reader.fail(f"{spec.name}: {params.size} parameters, expected {num_weights + spec.num_filters}")
    out.tensors[f"{spec.name}.weight"] = params[:num_weights].reshape(want_filters).copy()
    out.tensors[f"{spec.name}.bias"] = params[num_weights:].copy()
    return spec.num_filters


def _read_affine(reader: DlibStreamReader, spec: LayerSpec, out: DlibResNetFile) -> None:
    reader.expect_string("affine_")
    start = reader.pos
    params = reader.read_tensor().reshape(-1)
    gamma_shape = reader.read_alias_tensor()
    beta_shape = reader.read_alias_tensor()
    mode = reader.read_int()
    channels = spec.num_filters
    if mode != _AFFINE_CONV_MODE or gamma_shape != (1, channels, 1, 1) or beta_shape != gamma_shape \
            or params.size != 2 * channels:
        reader.pos = start
        raise reader.fail(f"{spec.name}: affine layer mode {mode}, shapes {gamma_shape}/{beta_shape}, "
                          f"{params.size} parameters; expected a per-channel affine of {channels} channels")
    out.tensors[f"{spec.name}.weight"] = params[:channels].copy()
    out.tensors[f"{spec.name}.bias"] = params[channels:].copy()


def _read_pool(reader: DlibStreamReader, spec: LayerSpec) -> None:
    reader.expect_string("max_pool_2" if spec.kind == "max_pool" else "avg_pool_2")
    reader.expect_int(spec.kernel, "pool rows")
    reader.expect_int(spec.kernel, "pool columns")
    reader.expect_int(spec.stride, "pool stride y")
    reader.expect_int(spec.stride, "pool stride x")
    reader.expect_int(spec.padding, "pool padding y")
    reader.expect_int(spec.padding, "pool padding x")


def _read_fc(reader: DlibStreamReader, spec: LayerSpec, in_features: int, out: DlibResNetFile) -> None:
    reader.expect_string("fc_2")
    reader.expect_int(spec.num_filters, "fc outputs")
    reader.expect_int(in_features, "fc inputs")
    start = reader.pos
    params = reader.read_tensor().reshape(-1)
    weights_shape = reader.read_alias_tensor()
    reader.read_alias_tensor()  # biases: unused without bias
    bias_mode = reader.read_int()
    for _ in range(4):
        reader.read_float()
    want = (in_features, spec.num_filters, 1, 1)
    if bias_mode != _FC_NO_BIAS or weights_shape != want or params.size != in_features * spec.num_filters:
        reader.pos = start
        raise reader.fail(f"fc layer with bias mode {bias_mode}, weights {weights_shape}, {params.size} parameters; "
                          f"expected fc_no_bias<{spec.num_filters}> over {in_features} inputs")
    # dlib computes out = x @ W with W of shape (inputs, outputs); torch Linear stores W^T.
    out.tensors["fc.weight"] = params.reshape(in_features, spec.num_filters).T.copy()


def _read_layer_details(reader: DlibStreamReader, spec: LayerSpec, channels: int, out: DlibResNetFile) -> int:
    """Read one layer's details; return the channel count of its output."""
    if spec.kind == "con":
        return _read_con(reader, spec, channels, out)
    if spec.kind == "affine":
        _read_affine(reader, spec, out)
        return channels
    if spec.kind == "relu":
        reader.expect_string("relu_")
        return channels
    if spec.kind in ("max_pool", "avg_pool"):
        _read_pool(reader, spec)
        return channels
    if spec.kind == "add_prev":
        reader.expect_string("add_prev_")
        return channels
    if spec.kind == "fc":
        _read_fc(reader, spec, channels, out)
        return spec.num_filters
    raise reader.fail(f"internal: no reader for layer kind {spec.kind!r}")


def _read_layer_state(reader: DlibStreamReader, version: int) -> None:
    """The add_layer bookkeeping after the details: three bools and cached tensors (ignored)."""
    for _ in range(3):
        reader.read_bool()
    reader.read_tensor()  # x_grad
    reader.read_tensor()  # cached_output
    if version >= 2:
        reader.read_tensor()  # params_grad


def parse_dlib_resnet_v1(data: bytes, source: str | Path = "<bytes>") -> DlibResNetFile:
    """Parse the bytes of a dlib ``anet_type`` face-recognition network. Raises :class:`ModelFileError`."""
    reader = DlibStreamReader(data, source)
    out = DlibResNetFile()
    specs = anet_layer_specs()

    reader.expect_int(1, "add_loss_layer version")
    reader.expect_string("loss_metric_2")
    out.loss_margin = reader.read_float()
    out.loss_distance_threshold = reader.read_float()

    # Wrapper versions, from the top (fc) down to the layer just above the bottom con.
    versions: list[int] = [0] * len(specs)
    for index in range(len(specs) - 1, 0, -1):
        spec = specs[index]
        start = reader.pos
        version = reader.read_int()
        allowed = (2,) if spec.is_add_layer else (1,)
        if version not in allowed:
            reader.pos = start
            raise reader.fail(f"layer {index} ({spec.kind}) wrapper version {version}, expected {allowed[0]}")
        versions[index] = version

    # The bottom add_layer holds the input layer.
    bottom_version = reader.read_int()
    if bottom_version not in (2, 3):
        raise reader.fail(f"input add_layer version {bottom_version}, expected 2 or 3")
    reader.expect_string("input_rgb_image_sized")
    out.input_means = (reader.read_float(), reader.read_float(), reader.read_float())
    reader.expect_int(INPUT_SIZE, "input rows")
    reader.expect_int(INPUT_SIZE, "input columns")
    channels = _read_layer_details(reader, specs[0], 3, out)
    for _ in range(3):
        reader.read_bool()
    for _ in range(3):  # x_grad, cached_output, grad_final
        reader.read_tensor()
    if bottom_version >= 3:
        reader.read_int()  # sample expansion factor

    # Remaining layers bottom-up; tags and skips have no details. The channel count is tracked through the
    # residual units so every con/fc layer can be checked against its input width.
    unit_input: int | None = None  # channels entering the current residual unit (tag1)
    block_output: int | None = None  # channels of the block's output in a down-sampling unit (tag2)
    for index in range(1, len(specs)):
        spec = specs[index]
        if spec.kind == "tag":
            if unit_input is None:
                unit_input, block_output = channels, None
            else:
                block_output = channels
            continue
        if spec.kind == "skip":
            if unit_input is None:
                raise reader.fail("internal: skip layer outside a residual unit")
            channels = unit_input
            continue
        if spec.kind == "add_prev":
            if unit_input is None:
                raise reader.fail("internal: add_prev layer outside a residual unit")
            other = block_output if block_output is not None else unit_input
            channels = max(channels, other)
            unit_input = None
        channels = _read_layer_details(reader, spec, channels, out)
        _read_layer_state(reader, versions[index])

    if reader.remaining:
        raise reader.fail(f"{reader.remaining} unexpected trailing bytes")
    log.debug("parsed %s: %d tensors, input means %s", source, len(out.tensors), out.input_means)
    return out


def read_dlib_resnet_v1(path: str | Path) -> DlibResNetFile:
    """Read ``dlib_face_recognition_resnet_model_v1.dat`` from disk (see :func:`parse_dlib_resnet_v1`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found; expected {EXPECTED_FORMAT}")
    return parse_dlib_resnet_v1(path.read_bytes(), path)
