"""Upsamplers: magnify a batch of face crops by an integer scale. Chosen by name from a registry."""

# Importing a backend registers it; the registry itself knows no backend.
from forensic_face.engine.upsamplers import face_sr  # noqa: F401
from forensic_face.engine.upsamplers.base import BicubicUpsampler, Upsampler
from forensic_face.engine.upsamplers.face_sr import (
    FaceSrNet,
    FaceSrUpsampler,
    count_parameters,
    load_face_sr,
    save_face_sr,
    weights_name,
)
from forensic_face.engine.upsamplers.registry import (
    available_upsamplers,
    create_upsampler,
    register_upsampler,
)

register_upsampler("bicubic", BicubicUpsampler)

# The package's public surface: outer layers (training trains and ships face-sr) import from here.
__all__ = ["BicubicUpsampler", "FaceSrNet", "FaceSrUpsampler", "Upsampler", "available_upsamplers",
           "count_parameters", "create_upsampler", "load_face_sr", "register_upsampler", "save_face_sr",
           "weights_name"]
