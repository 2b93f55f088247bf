"""Decisions carried forward: when a probe is searched again, the examiner's decisions on earlier searches of the
same probe follow each identity to its candidate in the new search, so a re-search never silently drops the
examiner's work. Which searches are of the same probe is one rule, :func:`same_probe_face`, also used by the
case history (:mod:`forensic_face.store.history`) and the window."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from forensic_face.engine import SearchResult, box_iou
from forensic_face.store.records import CarriedDecisions

#: Two searches are of the same probe when they use the same probe evidence and face boxes that overlap by at
#: least this intersection over union: a box drawn again by hand, or found again by the detector with other
#: settings, still counts; a different face in the same still does not.
SAME_PROBE_MIN_IOU = 0.8


def same_probe_face(first_box: Sequence[float], second_box: Sequence[float]) -> bool:
    """Whether two face boxes in the same evidence still are the same probe (:data:`SAME_PROBE_MIN_IOU`)."""
    first, second = np.asarray(first_box, dtype=np.float64), np.asarray(second_box, dtype=np.float64)
    return box_iou(first, second) >= SAME_PROBE_MIN_IOU


def carry_decisions(conn: sqlite3.Connection, search_id: int, evidence_id: int,
                    result: SearchResult) -> CarriedDecisions:
    """Carry the decisions of earlier searches of the same probe (:data:`SAME_PROBE_MIN_IOU`) to ``search_id``,
    inside the transaction that records it.

    Per identity the latest decision made on any of them counts; each is recorded on this search's candidate
    of that identity with the search and rank it was made on and its original examiner and time, so a
    re-search never silently drops the examiner's work. A decision whose identity is not among the new
    candidates is listed as not carried. "not reviewed" is nothing to carry.
    """
    box = result.probe_face.to_json()["box"]
    earlier = [int(r[0]) for r in conn.execute(
        "SELECT id, face_json FROM searches WHERE evidence_id = ? AND id < ? ORDER BY id",
        (evidence_id, search_id)) if same_probe_face(json.loads(r[1])["box"], box)]
    if not earlier:
        return CarriedDecisions()
    latest: dict[str, tuple[Any, ...]] = {}
    for row in conn.execute(
            "SELECT d.search_id, d.rank, r.identity, d.decision, d.note, d.examiner, d.utc FROM decisions d "
            "JOIN results r ON r.search_id = d.search_id AND r.rank = d.rank WHERE d.search_id IN "
            f"({', '.join('?' * len(earlier))}) ORDER BY d.id", earlier):
        latest[str(row[2])] = row
    new_rank: dict[str, int] = {}
    for cand in result.candidates:
        new_rank.setdefault(cand.identity, cand.rank)
    carried: list[dict[str, Any]] = []
    not_carried: list[dict[str, Any]] = []
    for identity, (from_search, from_rank, _, decision, note, examiner, utc) in sorted(latest.items()):
        if decision == "not reviewed":
            continue
        record = {"identity": identity, "decision": decision, "note": note, "examiner": examiner,
                  "decided_utc": utc, "from_search_id": int(from_search), "from_rank": int(from_rank)}
        if identity not in new_rank:
            not_carried.append(record)
            continue
        conn.execute("INSERT INTO decisions (search_id, rank, decision, note, examiner, utc, "
                     "carried_from_search_id, carried_from_rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (search_id, new_rank[identity], decision, note, examiner, utc, int(from_search),
                      int(from_rank)))
        carried.append({**record, "rank": new_rank[identity]})
    carried.sort(key=lambda c: c["rank"])
    return CarriedDecisions(tuple(carried), tuple(not_carried))
