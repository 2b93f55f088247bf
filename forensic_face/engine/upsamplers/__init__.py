"""Upsamplers: magnify a batch of face crops by an integer scale. Chosen by name from a registry."""

# Importing a backend registers it; the registry itself knows no backend.
from forensic_face.engine.upsamplers import face_sr  # noqa: F401
from forensic_face.engine.upsamplers.base import BicubicUpsampler, Upsampler
from forensic_face.engine.upsamplers.registry import (
    available_upsamplers,
    create_upsampler,
    register_upsampler,
)

register_upsampler("bicubic", BicubicUpsampler)

__all__ = ["BicubicUpsampler", "Upsampler", "available_upsamplers", "create_upsampler", "register_upsampler"]
