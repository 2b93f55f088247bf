"""Case files: SQLite store, hash-chained audit trail, verification."""

from forensic_face.store.audit import AuditEntry, ChainCheck
from forensic_face.store.case_store import CaseStore, default_case_path, open_case
from forensic_face.store.records import (
    DECISIONS,
    CaseInfo,
    Decision,
    EnrollmentItem,
    EnrollmentState,
    EvidenceItem,
    GalleryRecord,
    StoredCandidate,
    StoredSearch,
)
from forensic_face.store.verify import (
    FileCheck,
    VerificationReport,
    verify_case,
    verify_store,
)

__all__ = [
    "DECISIONS", "AuditEntry", "CaseInfo", "CaseStore", "ChainCheck", "Decision", "EnrollmentItem",
    "EnrollmentState", "EvidenceItem", "FileCheck", "GalleryRecord", "StoredCandidate", "StoredSearch",
    "VerificationReport", "default_case_path", "open_case", "verify_case", "verify_store",
]
