"""A case's searches grouped per probe, with what changed from one search of a probe to the next.

A probe is one face in one evidence still: searches of the same evidence whose face boxes are the same face
(:func:`forensic_face.store.case_store.same_probe_face`, the rule decisions are carried by). ``case show`` lists
each probe's searches, latest first, with who ran them, their settings digest and how the top 5 changed; the
report uses the search the examiner chose per probe (the latest by default) and lists the others in an annex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forensic_face.engine.errors import CaseStoreError
from forensic_face.store.case_store import (
    CarriedDecisions,
    CaseStore,
    EvidenceItem,
    Review,
    StoredSearch,
    same_probe_face,
)

#: How many ranks the history compares between consecutive searches of a probe.
COMPARED_RANKS = 5


@dataclass(frozen=True)
class RankingChange:
    """How the top :data:`COMPARED_RANKS` of a search differ from the previous search of the same probe."""

    entered: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    #: (identity, previous rank, rank now) of identities in both top lists at another rank.
    moved: tuple[tuple[str, int, int], ...] = ()

    @property
    def unchanged(self) -> bool:
        return not (self.entered or self.left or self.moved)

    def describe(self) -> str:
        if self.unchanged:
            return f"top {COMPARED_RANKS} unchanged"
        parts = []
        if self.entered:
            parts.append(f"entered the top {COMPARED_RANKS}: {', '.join(self.entered)}")
        if self.left:
            parts.append(f"left the top {COMPARED_RANKS}: {', '.join(self.left)}")
        if self.moved:
            parts.append("moved: " + ", ".join(f"{i} {a}->{b}" for i, a, b in self.moved))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"entered": list(self.entered), "left": list(self.left),
                "moved": [{"identity": i, "from": a, "to": b} for i, a, b in self.moved]}


def ranking_change(previous: StoredSearch, current: StoredSearch) -> RankingChange:
    before = {c.candidate.identity: c.candidate.rank for c in previous.candidates[:COMPARED_RANKS]}
    now = {c.candidate.identity: c.candidate.rank for c in current.candidates[:COMPARED_RANKS]}
    return RankingChange(
        entered=tuple(i for i in now if i not in before), left=tuple(i for i in before if i not in now),
        moved=tuple((i, before[i], now[i]) for i in now if i in before and before[i] != now[i]))


@dataclass(frozen=True)
class SearchHistory:
    search: StoredSearch
    #: Who recorded the search (its audit entry's actor).
    examiner: str
    settings_digest: str
    #: Versus the previous search of the probe (None for the first).
    change: RankingChange | None
    carried: CarriedDecisions
    reviews: tuple[Review, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        s = self.search
        return {
            "id": s.id, "created_utc": s.created_utc, "examiner": self.examiner, "status": s.status,
            "settings_digest": self.settings_digest, "probe": str(s.probe.path), "probe_evidence_id": s.probe.id,
            "face_box": [round(float(v), 2) for v in s.face.box],
            "top5_change": None if self.change is None else self.change.to_json(),
            "carried_decisions": self.carried.to_json(), "reviews": [r.to_json() for r in self.reviews],
            "candidates": [{"rank": c.candidate.rank, "identity": c.candidate.identity,
                            "score": c.candidate.score, "log10_lr": c.log10_lr, "decision": c.decision.to_json()}
                           for c in s.candidates]}


@dataclass(frozen=True)
class ProbeHistory:
    """One probe (evidence still and face) and its searches, oldest first."""

    evidence: EvidenceItem
    searches: tuple[SearchHistory, ...]

    @property
    def latest(self) -> SearchHistory:
        return self.searches[-1]

    def chosen(self, search_ids: Sequence[int] = ()) -> SearchHistory:
        """The search to report for this probe: the latest of ``search_ids`` that is one of its searches, else
        its latest search."""
        picked = [h for h in self.searches if h.search.id in set(search_ids)]
        return picked[-1] if picked else self.latest

    def to_json(self) -> dict[str, Any]:
        return {"evidence_id": self.evidence.id, "probe": str(self.evidence.path), "sha256": self.evidence.sha256,
                "face_box": [round(float(v), 2) for v in self.latest.search.face.box],
                "searches": [h.to_json() for h in reversed(self.searches)]}


def case_history(store: CaseStore) -> list[ProbeHistory]:
    """Every search of the case, grouped per probe (in the order probes were first searched)."""
    entries = {int(e.details["search_id"]): e for e in store.audit_entries()
               if e.action == "search" and "search_id" in e.details}
    groups: list[list[StoredSearch]] = []
    for search_id in store.search_ids():
        search = store.search(search_id)
        for group in groups:
            first = group[0]
            if first.probe.id == search.probe.id and same_probe_face(first.face.box, search.face.box):
                group.append(search)
                break
        else:
            groups.append([search])
    reviews: dict[int, list[Review]] = {}
    for review in store.reviews():
        reviews.setdefault(review.search_id, []).append(review)
    out = []
    for group in groups:
        histories = []
        for k, search in enumerate(group):
            entry = entries.get(search.id)
            if entry is None:
                raise CaseStoreError(f"{store.path}: search {search.id} has no search entry in the audit trail; run "
                                     f"'forensic-face verify {store.path}'")
            histories.append(SearchHistory(
                search, entry.actor, str(entry.details.get("config_digest") or search.config.digest()),
                None if k == 0 else ranking_change(group[k - 1], search), CarriedDecisions.from_entry(entry),
                tuple(reviews.get(search.id, ()))))
        out.append(ProbeHistory(group[0].probe, tuple(histories)))
    return out
