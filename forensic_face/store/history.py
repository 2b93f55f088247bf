"""A case's searches grouped per probe, with what changed from one search of a probe to the next.

A probe is one face in one evidence still: searches of the same evidence whose face boxes are the same face
(:func:`forensic_face.store.carry.same_probe_face`, the rule decisions are carried by). ``case show`` lists
each probe's searches, latest first, with who ran them, their settings digest and how the top 5 changed; the
report uses the search the examiner chose per probe (the latest by default) and lists the others in an annex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forensic_face.engine import CaseStoreError
from forensic_face.store.carry import same_probe_face
from forensic_face.store.case_store import CaseStore
from forensic_face.store.records import CarriedDecisions, EvidenceItem, Review, StoredSearch

#: The audit action of an examiner's choice of the search a probe's report uses.
REPORT_CHOICE_ACTION = "report_choice"
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
    #: The search the examiner chose for the report (:func:`choose_reported_search`); None: the latest.
    reported: int | None = None

    @property
    def latest(self) -> SearchHistory:
        return self.searches[-1]

    def chosen(self, search_ids: Sequence[int] = ()) -> SearchHistory:
        """The search to report for this probe: the latest of ``search_ids`` that is one of its searches, else
        the one the examiner chose, else its latest search."""
        picked = [h for h in self.searches if h.search.id in set(search_ids)]
        if picked:
            return picked[-1]
        return next((h for h in self.searches if h.search.id == self.reported), self.latest)

    def to_json(self) -> dict[str, Any]:
        return {"evidence_id": self.evidence.id, "probe": str(self.evidence.path), "sha256": self.evidence.sha256,
                "face_box": [round(float(v), 2) for v in self.latest.search.face.box],
                "reported_search_id": self.chosen().search.id,
                "searches": [h.to_json() for h in reversed(self.searches)]}


def probe_groups(store: CaseStore) -> list[list[int]]:
    """The case's search ids grouped per probe, oldest first within a group and groups in the order their probes
    were first searched. Reads only each search's evidence and face box (no images), so it is cheap."""
    groups: list[tuple[int, tuple[float, ...], list[int]]] = []
    for search_id, evidence_id, box in store.search_faces():
        for group_evidence, group_box, ids in groups:
            if group_evidence == evidence_id and same_probe_face(group_box, box):
                ids.append(search_id)
                break
        else:
            groups.append((evidence_id, box, [search_id]))
    return [ids for _, _, ids in groups]


def report_choices(store: CaseStore) -> list[tuple[frozenset[int], int | None]]:
    """The examiner's choices of reported search, oldest first: (the probe's searches when the choice was made,
    the chosen search id or None for "the latest")."""
    return [(frozenset(int(i) for i in e.details.get("probe_search_ids", ())), e.details.get("search_id"))
            for e in store.audit_entries() if e.action == REPORT_CHOICE_ACTION]


def _reported(ids: Sequence[int], choices: list[tuple[frozenset[int], int | None]]) -> int | None:
    """The chosen search of the probe with searches ``ids`` (None: the latest): the last choice about it counts,
    and a later search of the probe leaves it standing."""
    about = [chosen for probe_ids, chosen in choices if probe_ids & set(ids)]
    return about[-1] if about and about[-1] in ids else None


def reported_search_ids(store: CaseStore) -> list[int]:
    """Per probe, the search the report uses (the examiner's choice, else the latest), in probe order."""
    choices = report_choices(store)
    return [_reported(ids, choices) or ids[-1] for ids in probe_groups(store)]


def choose_reported_search(store: CaseStore, search_id: int, latest: bool = False) -> None:
    """Record (audited, in the hash chain) that the report uses ``search_id`` for its probe; ``latest``: the
    probe's latest search whatever comes later (the default, which a choice of an earlier search overrides)."""
    group = next((ids for ids in probe_groups(store) if search_id in ids), None)
    if group is None:
        raise CaseStoreError(f"{store.path}: no search {search_id}; known: {store.search_ids()}")
    store.log_action(REPORT_CHOICE_ACTION, {"probe_search_ids": group, "search_id": None if latest else search_id})


def probe_history(store: CaseStore, search_id: int) -> ProbeHistory:
    """The probe of ``search_id`` with all its searches (loads only that probe's searches)."""
    group = next((ids for ids in probe_groups(store) if search_id in ids), None)
    if group is None:
        raise CaseStoreError(f"{store.path}: no search {search_id}; known: {store.search_ids()}")
    return _histories(store, [group])[0]


def case_history(store: CaseStore) -> list[ProbeHistory]:
    """Every search of the case, grouped per probe (in the order probes were first searched)."""
    return _histories(store, probe_groups(store))


def _histories(store: CaseStore, id_groups: list[list[int]]) -> list[ProbeHistory]:
    entries = {int(e.details["search_id"]): e for e in store.audit_entries()
               if e.action == "search" and "search_id" in e.details}
    choices = report_choices(store)
    reviews: dict[int, list[Review]] = {}
    for review in store.reviews():
        reviews.setdefault(review.search_id, []).append(review)
    out = []
    for ids in id_groups:
        group = [store.search(i) for i in ids]
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
        out.append(ProbeHistory(group[0].probe, tuple(histories), _reported(ids, choices)))
    return out
