"""Chunked evaluation: map_chunks gives what one call over everything gives."""

from __future__ import annotations

import pytest
import torch

from forensic_face.engine.batching import map_chunks


def test_map_chunks_matches_one_call() -> None:
    x = torch.arange(10.0)[:, None]
    y = torch.ones(10, 2)
    out = map_chunks(lambda a, b: a * 2 + b.sum(1, keepdim=True), (x, y), batch_size=3)
    torch.testing.assert_close(out, x * 2 + 2)
    with pytest.raises(ValueError):
        map_chunks(lambda a: a, (torch.zeros(0, 1),), 2)
