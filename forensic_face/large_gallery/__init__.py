"""Galleries too large for an exhaustive search: a nearest-neighbour shortlist (:mod:`.shortlist`) and
enrollment spread over a Ray cluster (:mod:`.distributed`). Both call the engine's own stages, never copies."""
