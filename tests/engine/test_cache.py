"""The on-disk template cache: round trip, and a damaged entry is recomputed, never trusted."""

from __future__ import annotations

from pathlib import Path

import torch

from forensic_face.engine.cache import TemplateCache, cache_key


def test_template_cache_roundtrip_and_corruption_is_recomputed(tmp_path: Path) -> None:
    cache = TemplateCache(tmp_path)
    key = cache_key(kind="test", sha="x", scale=2)
    templates = torch.randn(5, 128)
    assert cache.load(key) is None
    cache.store(key, templates)
    torch.testing.assert_close(cache.load(key), templates)
    path = next(tmp_path.rglob("*.safetensors"))
    data = bytearray(path.read_bytes())
    data[-8:] = b"\x00" * 8  # damage the tensor bytes: the recorded SHA-256 no longer matches
    path.write_bytes(bytes(data))
    assert cache.load(key) is None
    assert not path.exists(), "an untrustworthy entry is removed"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")
    assert cache.load(key) is None
    assert TemplateCache(None).load(key) is None
