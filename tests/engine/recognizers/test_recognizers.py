"""Recognizer registry, interface, model-file errors, the dlib conversion cache, ONNX and FaceNet backends."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from forensic_face.engine.errors import (
    ConfigError,
    ModelFileError,
    ShapeError,
    WeightsIntegrityError,
)
from forensic_face.engine.recognizers import (
    AlignedRecognizer,
    Recognizer,
    available_recognizers,
    create_recognizer,
    dlib_resnet,
    register_recognizer,
    template_family,
)
from forensic_face.engine.recognizers import registry as registry_module
from forensic_face.engine.recognizers.dlib_format import parse_dlib_resnet_v1

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dlib_rec() -> Recognizer:
    torch.set_num_threads(1)
    return create_recognizer("dlib-resnet", CPU, batch_size=4)


def _faces(n: int, size: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(n)
    images = torch.rand(n, 3, size, size, generator=gen)
    base = torch.tensor([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]]) * size
    return images, base + torch.randn(n, 5, 2, generator=gen)


# -- registry --------------------------------------------------------------------------------------------------


def test_builtin_backends_are_registered() -> None:
    assert {"dlib-resnet", "onnx-arcface", "facenet-inception"} <= set(available_recognizers())


def test_registry_rejects_duplicates_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_recognizer("dlib-resnet", dlib_resnet.DlibResNetRecognizer)
    with pytest.raises(ConfigError, match="unknown recognizer"):
        create_recognizer("no-such-model", CPU)


def test_custom_backend_can_be_registered_and_created() -> None:
    class MeanColour(AlignedRecognizer):
        name = "mean-colour-test"
        input_size = 8
        embedding_dim = 3
        alignment = "box"

        def __init__(self, device: torch.device, batch_size: int = 64, model_path: str | None = None,
                     precision: str = "fp32") -> None:
            super().__init__(device, batch_size, precision)

        def _forward(self, chips: torch.Tensor) -> torch.Tensor:
            return chips.mean(dim=(2, 3)) + 0.1

    register_recognizer("mean-colour-test", MeanColour)
    try:
        rec = create_recognizer("mean-colour-test", CPU, batch_size=2)
        images, lms = _faces(5, 16)
        emb = rec.embed(rec.prepare(images, lms))
        assert isinstance(rec, Recognizer)
        assert emb.shape == (5, 3) and emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))
    finally:
        registry_module._REGISTRY.pop("mean-colour-test", None)


# -- dlib-resnet -----------------------------------------------------------------------------------------------


def test_dlib_recognizer_interface(dlib_rec: Recognizer) -> None:
    assert isinstance(dlib_rec, Recognizer)
    assert (dlib_rec.name, dlib_rec.input_size, dlib_rec.embedding_dim, dlib_rec.alignment) == \
        ("dlib-resnet", 150, 128, "template")
    assert len(dlib_rec.weights_sha256) == 64 and dlib_rec.device == CPU
    images, lms = _faces(5)
    chips = dlib_rec.prepare(images, lms)
    assert chips.shape == (5, 3, 150, 150) and chips.device == CPU
    assert float(chips.min()) >= 0.0 and float(chips.max()) <= 1.0
    emb = dlib_rec.embed(chips)
    assert emb.shape == (5, 128) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))
    # Chunking (batch_size=4 over 5 chips) gives the same result as one batch.
    one_batch = create_recognizer("dlib-resnet", CPU, batch_size=64).embed(chips)
    torch.testing.assert_close(emb, one_batch, atol=1e-5, rtol=0)
    # Raw descriptors are dlib's unnormalised output; embed() is their direction.
    raw = dlib_rec.embed_raw(chips)
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=1), emb)
    assert dlib_rec.embed(chips[:0]).shape == (0, 128)


def test_flip_test_templates_are_the_sum_of_chip_and_mirror(dlib_rec: Recognizer) -> None:
    flipped = create_recognizer("dlib-resnet", CPU, batch_size=4, flip_test=True)
    assert flipped.flip_test and not dlib_rec.flip_test
    assert (template_family(flipped), template_family(dlib_rec)) == ("dlib-resnet+flip", "dlib-resnet")
    images, lms = _faces(3)
    chips = dlib_rec.prepare(images, lms)
    expected = torch.nn.functional.normalize(dlib_rec.embed_raw(chips) + dlib_rec.embed_raw(chips.flip(-1)), dim=1)
    emb = flipped.embed(chips)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=0)
    # A face and its mirror image get the same template; without the flip test they do not.
    torch.testing.assert_close(flipped.embed(chips.flip(-1)), emb, atol=1e-5, rtol=0)
    assert float((dlib_rec.embed(chips.flip(-1)) - dlib_rec.embed(chips)).abs().max()) > 1e-3
    assert flipped.embed(chips[:0]).shape == (0, 128)


def test_dlib_recognizer_validates_inputs(dlib_rec: Recognizer) -> None:
    with pytest.raises(ShapeError):
        dlib_rec.embed(torch.rand(2, 3, 112, 112))
    with pytest.raises(ShapeError):
        dlib_rec.prepare(torch.rand(2, 3, 64, 64), torch.rand(3, 5, 2))
    with pytest.raises(ConfigError, match="CUDA"):
        create_recognizer("dlib-resnet", CPU, precision="fp16")
    with pytest.raises(ConfigError):
        create_recognizer("dlib-resnet", CPU, precision="fp8")


def test_conversion_is_cached_by_sha_and_verified(monkeypatch: pytest.MonkeyPatch, dlib_rec: Recognizer) -> None:
    from forensic_face.paths import cache_dir

    cached = sorted((cache_dir() / "weights").glob(f"dlib-resnet-v1-{dlib_rec.weights_sha256}-*.safetensors"))
    assert len(cached) == 1
    # A second load uses the cache: the .dat parser must not run.
    def _no_parse(*_a: object, **_k: object) -> None:
        raise AssertionError("the .dat file was parsed again despite a valid cache")

    monkeypatch.setattr(dlib_resnet, "read_dlib_resnet_v1", _no_parse)
    model, digest = dlib_resnet.load_dlib_resnet()
    assert digest == dlib_rec.weights_sha256
    monkeypatch.undo()
    # A damaged cache entry fails verification and is rebuilt from the .dat file.
    data = bytearray(cached[0].read_bytes())
    data[-10] ^= 0xFF
    cached[0].write_bytes(bytes(data))
    model2, _ = dlib_resnet.load_dlib_resnet()
    for (name, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), name


def test_dlib_model_file_errors(tmp_path: Path, dlib_rec: Recognizer) -> None:
    import face_recognition_models as frm

    with pytest.raises(ModelFileError, match="missing"):
        create_recognizer("dlib-resnet", CPU, model_path=str(tmp_path / "nope.dat"))
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(ModelFileError, match="garbage.dat.*expected dlib"):
        create_recognizer("dlib-resnet", CPU, model_path=str(garbage))
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(Path(frm.face_recognition_model_location()).read_bytes()[:3_000_000])
    with pytest.raises(ModelFileError, match="truncated.dat.*end of file"):
        create_recognizer("dlib-resnet", CPU, model_path=str(truncated))
    # A real dlib file of another kind (the 5-point shape predictor) is refused by name.
    other = tmp_path / "shape_predictor.dat"
    shutil.copy(frm.pose_predictor_five_point_model_location(), other)
    with pytest.raises(ModelFileError, match="shape_predictor.dat"):
        create_recognizer("dlib-resnet", CPU, model_path=str(other))
    with pytest.raises(WeightsIntegrityError, match="SHA-256"):
        dlib_resnet.load_dlib_resnet(expected_sha256="0" * 64)


def test_parser_checks_layer_hyper_parameters() -> None:
    import face_recognition_models as frm

    data = bytearray(Path(frm.face_recognition_model_location()).read_bytes())
    # The first con layer stores num_filters=32 as the integer bytes 01 20 right after its params tensor;
    # change it to 33 and the parser must name the mismatch.
    marker = data.index(b"con_4") + len(b"con_4")
    # params tensor: version(01 02) + 4 dims, then 32*3*7*7+32 floats.
    pos = marker
    pos += 2  # tensor version 2
    for _ in range(4):
        pos += 1 + (data[pos] & 0x0F)
    pos += 4 * (32 * 3 * 7 * 7 + 32)
    assert data[pos:pos + 2] == b"\x01\x20"
    data[pos + 1] = 33
    with pytest.raises(ModelFileError, match="number of filters is 33, expected 32"):
        parse_dlib_resnet_v1(bytes(data), "edited.dat")


# -- onnx-arcface ----------------------------------------------------------------------------------------------


class _TinyArcFace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)
        self.fc = torch.nn.Linear(8 * 27 * 27, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _export(model: torch.nn.Module, path: Path, size: int = 112, dynamic: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(1, 3, size, size),), str(path), input_names=["data"],
                          output_names=["embedding"], dynamo=False,
                          dynamic_axes={"data": {0: "n"}, "embedding": {0: "n"}} if dynamic else None)


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_backend_matches_the_exported_model(tmp_path: Path, dynamic: bool) -> None:
    model = _TinyArcFace()
    path = tmp_path / "tiny.onnx"
    _export(model, path, dynamic=dynamic)
    rec = create_recognizer("onnx-arcface", CPU, batch_size=3, model_path=str(path))
    assert isinstance(rec, Recognizer)
    assert (rec.input_size, rec.embedding_dim, rec.alignment) == (112, 16, "template")
    images, lms = _faces(4)
    chips = rec.prepare(images, lms)
    assert chips.shape == (4, 3, 112, 112)
    emb = rec.embed(chips)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model((chips * 255 - 127.5) / 127.5), dim=1)
    torch.testing.assert_close(emb, want, atol=1e-5, rtol=1e-4)


def test_onnx_backend_model_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="needs a model file"):
        create_recognizer("onnx-arcface", CPU)
    with pytest.raises(ModelFileError, match="not found"):
        create_recognizer("onnx-arcface", CPU, model_path=str(tmp_path / "missing.onnx"))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not protobuf" * 50)
    with pytest.raises(ModelFileError, match="corrupt.onnx.*ONNX face-recognition model"):
        create_recognizer("onnx-arcface", CPU, model_path=str(corrupt))
    wrong_size = tmp_path / "wrong_size.onnx"
    _export(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), wrong_size, size=64,
            dynamic=False)
    with pytest.raises(ModelFileError, match=r"wrong_size.onnx.*\[1, 3, 64, 64\]"):
        create_recognizer("onnx-arcface", CPU, model_path=str(wrong_size))
    with pytest.raises(ConfigError):
        create_recognizer("onnx-arcface", CPU, model_path=str(wrong_size), precision="bf16")


# -- facenet-inception -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def facenet_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=False).eval()
    path = tmp_path_factory.mktemp("facenet") / "facenet_random.pt"
    torch.save(model.state_dict(), path)
    return path, model


def test_facenet_backend_embeds_box_crops(facenet_state: tuple[Path, torch.nn.Module]) -> None:
    path, model = facenet_state
    rec = create_recognizer("facenet-inception", CPU, batch_size=2, model_path=str(path))
    assert isinstance(rec, Recognizer)
    assert (rec.input_size, rec.embedding_dim, rec.alignment) == (160, 512, "box")
    images, lms = _faces(3, 100)
    chips = rec.prepare(images, lms)
    assert chips.shape == (3, 3, 160, 160)
    emb = rec.embed(chips)
    assert emb.shape == (3, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    with torch.no_grad():
        want = model((chips * 255 - 127.5) / 128.0)
    torch.testing.assert_close(emb, want, atol=1e-5, rtol=1e-4)


def test_facenet_backend_model_file_errors(tmp_path: Path, facenet_state: tuple[Path, torch.nn.Module]) -> None:
    path, model = facenet_state
    with pytest.raises(ModelFileError, match="needs a model file"):
        create_recognizer("facenet-inception", CPU)
    with pytest.raises(ModelFileError, match="not found"):
        create_recognizer("facenet-inception", CPU, model_path=str(tmp_path / "missing.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04garbage" * 20)
    with pytest.raises(ModelFileError, match="corrupt.pt.*InceptionResnetV1"):
        create_recognizer("facenet-inception", CPU, model_path=str(corrupt))
    partial = tmp_path / "partial.pt"
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("last_bn")}
    torch.save(state, partial)
    with pytest.raises(ModelFileError, match="partial.pt.*last_bn"):
        create_recognizer("facenet-inception", CPU, model_path=str(partial))
    # A classifier head in the file is ignored (embeddings only).
    with_head = tmp_path / "with_head.pt"
    torch.save({**model.state_dict(), "logits.weight": torch.zeros(10, 512), "logits.bias": torch.zeros(10)},
               with_head)
    assert create_recognizer("facenet-inception", CPU, model_path=str(with_head)).embedding_dim == 512


# -- precision -------------------------------------------------------------------------------------------------


def test_bf16_on_a_cpu_with_bfloat16_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    from forensic_face.engine.recognizers import base

    images, lms = _faces(3)
    native = base.cpu_has_native_bf16()
    fp32 = create_recognizer("dlib-resnet-lr", CPU, batch_size=4)
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: True)
    bf16 = create_recognizer("dlib-resnet-lr", CPU, batch_size=4, precision="auto")
    assert bf16.precision == "bf16" and bf16.compute_dtype == torch.bfloat16
    assert template_family(bf16) == "dlib-resnet-lr@bf16" and template_family(fp32) == "dlib-resnet-lr"
    if native:  # the templates themselves only where the processor runs bfloat16
        emb32, emb16 = fp32.embed_faces(images, lms), bf16.embed_faces(images, lms)
        assert emb16.dtype == torch.float32
        assert float(torch.nn.functional.cosine_similarity(emb32, emb16).min()) > 0.999
    # Without the instructions bf16 would be emulated and slower: refused with the reason, auto means fp32.
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="bfloat16 instructions"):
        create_recognizer("dlib-resnet-lr", CPU, precision="bf16")
    assert create_recognizer("dlib-resnet-lr", CPU, precision="auto").precision == "fp32"
