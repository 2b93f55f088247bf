"""Upsamplers: magnify a batch of face crops by an integer scale. Chosen by name from a registry."""

from forensic_face.engine.upsamplers.base import (
    BicubicUpsampler,
    Upsampler,
    available_upsamplers,
    create_upsampler,
    register_upsampler,
)

__all__ = ["BicubicUpsampler", "Upsampler", "available_upsamplers", "create_upsampler", "register_upsampler"]
