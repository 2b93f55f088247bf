"""Recognizer ensembles: several networks of different families, each embedding every face its own way.

A recognizer setting that names several registered networks joined by ``+`` (``"dlib-resnet-lr+faceres"``)
builds a :class:`RecognizerEnsemble`. Every probe hypothesis and every gallery hypothesis is embedded by each
member (each with its own alignment and chip size); the members' L2-normalised templates are kept side by side,
one block of the template per member (:attr:`RecognizerEnsemble.member_dims`), so caches, indexes and the
shortlist store one template per face like a single network, keyed by the ensemble's own family and digest.
Fusion (:func:`forensic_face.engine.fusion.fuse_scores` with ``blocks``) scores each member's block alone, as a
single network would be scored, and combines the members' scores by the configured rule.

Networks of different families err on different faces: on LFW people a one-chip comparison at 24 px through a
camera found 27.7 % rank-1 for dlib's ResNet, 36.5 % for faceres and 48.4 % for the two together, while a second
network of dlib's family added little (docs/recognizer.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from forensic_face.engine.errors import ConfigError
from forensic_face.engine.recognizers.base import Recognizer

#: Joins member names in an ensemble's recognizer setting.
ENSEMBLE_SEPARATOR = "+"

#: Ensembles measured in the full method and offered beside the single networks: on the first 200 LFW-XRes people
#: (24 px, fast budget, bf16, 4 blur hypotheses) dlib-resnet-lr + faceres ranked the true person first for 66.7 %
#: of probes (znorm rule; 59.3 % with mean) against 53.8 % for dlib-resnet-lr alone (docs/accuracy.md).
MEASURED_ENSEMBLES: tuple[str, ...] = ("dlib-resnet-lr+faceres",)


def ensemble_members(name: str) -> list[str]:
    """The member names of a recognizer setting (one name for a single network)."""
    members = [part.strip() for part in str(name).split(ENSEMBLE_SEPARATOR)]
    if any(not m for m in members):
        raise ConfigError(f"recognizer {name!r} has an empty member name; write e.g. 'dlib-resnet-lr+faceres'")
    if len(set(members)) != len(members):
        raise ConfigError(f"recognizer {name!r} names a member twice; each network may appear once")
    return members


class RecognizerEnsemble:
    """Several recognizers used as one: :meth:`embed_faces` concatenates the members' templates.

    ``prepare``/``embed`` of a single network do not apply (each member aligns its own chips); the engine calls
    :meth:`embed_faces`, which every recognizer has.
    """

    alignment = "per-member"
    input_size = 0

    def __init__(self, members: Sequence[Recognizer]) -> None:
        if len(members) < 2:
            raise ConfigError("an ensemble needs at least two recognizers")
        self.members: tuple[Recognizer, ...] = tuple(members)
        self.name = ENSEMBLE_SEPARATOR.join(m.name for m in self.members)
        self.device = self.members[0].device
        self.batch_size = self.members[0].batch_size
        self.precision = self.members[0].precision
        self.member_dims: tuple[int, ...] = tuple(int(m.embedding_dim) for m in self.members)
        self.embedding_dim = sum(self.member_dims)
        # One digest for the whole: which networks, in which order, with which weights.
        joined = ";".join(f"{m.name}:{m.weights_sha256}" for m in self.members)
        self.weights_sha256 = hashlib.sha256(joined.encode()).hexdigest()

    @property
    def flip_test(self) -> bool:
        return all(m.flip_test for m in self.members)

    @flip_test.setter
    def flip_test(self, value: bool) -> None:
        for member in self.members:
            member.flip_test = bool(value)

    def prepare(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"recognizer ensemble {self.name!r} aligns each member's chips itself; use embed_faces")

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"recognizer ensemble {self.name!r} embeds faces, not chips; use embed_faces")

    def embed_faces(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` [0,1] faces and ``(N,5,2)`` px landmarks -> ``(N, sum(member_dims))``: each member's
        L2-normalised template in its block, in member order."""
        return torch.cat([m.embed_faces(images, landmarks).float() for m in self.members], dim=1)

    def __repr__(self) -> str:
        return f"RecognizerEnsemble({', '.join(repr(m) for m in self.members)})"
