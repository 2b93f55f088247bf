"""Case seals: the audit trail's head hash, exported, timestamped and signed (Ed25519) by the examiner.

Inside the file, the hash chain catches an edited, inserted or deleted entry, but not a trail cut short at its end
or rewritten from the start with consistent hashes: whoever can write the file can do that. A seal, kept outside
the case file, records how many entries the trail had and the hash of the last one, and is signed with the
examiner's private key, so :func:`check_seal` can tell, later and elsewhere, that the trail still begins with
exactly the sealed entries.

Seal file (JSON)::

    {"payload": {"format", "case_number", "case_file", "sealed_utc", "head_seq", "head_hash",
                 "public_key" (raw Ed25519, base64), "key_fingerprint"},
     "signature": base64 Ed25519 signature of canonical_json(payload)}

Keys: :func:`generate_key_pair` writes the private key (PKCS#8 PEM, mode 0600) and the public key
(``<private>.pub``, SubjectPublicKeyInfo PEM); neither is ever overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from forensic_face.engine import SealError
from forensic_face.store import audit

SEAL_FORMAT = "forensic_face case seal 1"
PUBLIC_KEY_SUFFIX = ".pub"


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(raw_public_key: bytes) -> str:
    """``SHA256:<hex>`` of the raw 32-byte public key: what an examiner reads out to confirm a key."""
    return "SHA256:" + hashlib.sha256(raw_public_key).hexdigest()


def generate_key_pair(private_path: str | Path) -> tuple[Path, Path, str]:
    """Create an examiner's Ed25519 key pair: ``private_path`` (0600) and ``private_path + '.pub'``.

    Returns (private key file, public key file, fingerprint). Refuses to overwrite either file.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from forensic_face.store.output import write_new_file

    private_file = Path(private_path)
    public_file = private_file.with_name(private_file.name + PUBLIC_KEY_SUFFIX)
    for existing in (private_file, public_file):
        if existing.exists() or existing.is_symlink():
            raise SealError(f"{existing} already exists; a key is never overwritten. Choose another file name")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    write_new_file(private_file, private_pem, mode=0o600)
    write_new_file(public_file, public_pem)
    return private_file, public_file, key_fingerprint(_raw_public(key.public_key()))


def _load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SealError(f"{path}: cannot read the private key ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise SealError(f"{path}: is not an unencrypted PEM private key ({exc}); create one with "
                        "'forensic-face case keygen FILE'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SealError(f"{path}: is a {type(key).__name__}, not an Ed25519 key; create one with "
                        "'forensic-face case keygen FILE'")
    return key


def load_public_key(path: str | Path) -> bytes:
    """The raw 32-byte Ed25519 public key in a PEM file (a ``.pub`` from :func:`generate_key_pair`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SealError(f"{path}: cannot read the public key ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise SealError(f"{path}: is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SealError(f"{path}: is a {type(key).__name__}, not an Ed25519 public key")
    return _raw_public(key)


def make_seal(case_number: str, case_file: Path, head: audit.AuditEntry, private_key_path: str | Path
              ) -> dict[str, Any]:
    """The signed seal document of a trail whose last entry is ``head`` (check the case is intact first)."""
    key = _load_private_key(Path(private_key_path))
    raw = _raw_public(key.public_key())
    payload = {"format": SEAL_FORMAT, "case_number": case_number, "case_file": str(case_file),
               "sealed_utc": audit.utc_now(), "head_seq": head.seq, "head_hash": head.entry_hash,
               "public_key": base64.b64encode(raw).decode("ascii"), "key_fingerprint": key_fingerprint(raw)}
    signature = key.sign(audit.canonical_json(payload).encode("utf-8"))
    return {"payload": payload, "signature": base64.b64encode(signature).decode("ascii")}


@dataclass(frozen=True)
class SealCheck:
    """A case's audit trail compared with a seal. ``problems`` empty: the trail begins with the sealed entries."""

    seal_path: Path
    sealed_utc: str = ""
    head_seq: int = 0
    head_hash: str = ""
    key_fingerprint: str = ""
    problems: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"seal": str(self.seal_path), "ok": self.ok, "sealed_utc": self.sealed_utc, "head_seq": self.head_seq,
                "head_hash": self.head_hash, "key_fingerprint": self.key_fingerprint,
                "problems": list(self.problems), "notes": list(self.notes)}


def read_seal(seal_path: str | Path) -> dict[str, Any]:
    path = Path(seal_path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        payload, signature = document["payload"], document["signature"]
        if not isinstance(payload, dict) or payload.get("format") != SEAL_FORMAT or not isinstance(signature, str):
            raise ValueError("unknown format")
        int(payload["head_seq"]), str(payload["head_hash"]), str(payload["public_key"])
    except OSError as exc:
        raise SealError(f"{path}: cannot read the seal ({exc.strerror or exc})") from None
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise SealError(f"{path}: is not a forensic_face case seal ({exc}); seals are written by "
                        "'forensic-face case seal'") from None
    return dict(document)


def check_seal(seal_path: str | Path, case_number: str, entries: Sequence[audit.AuditEntry],
               public_key_path: str | Path | None = None) -> SealCheck:
    """Check the seal's signature (with ``public_key_path`` when given, else the key inside the seal) and that
    the trail ``entries`` still holds the sealed head entry at its position (not truncated, not rewritten)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(seal_path)
    document = read_seal(path)
    payload = document["payload"]
    head_seq, head_hash = int(payload["head_seq"]), str(payload["head_hash"])
    problems: list[str] = []
    notes: list[str] = []
    try:
        embedded = base64.b64decode(payload["public_key"], validate=True)
        Ed25519PublicKey.from_public_bytes(embedded).verify(
            base64.b64decode(document["signature"], validate=True), audit.canonical_json(payload).encode("utf-8"))
    except (InvalidSignature, ValueError):
        embedded = b""
        problems.append(f"the seal's signature does not match its content: the seal file {path} was edited or "
                        "damaged, so nothing it states can be relied on")
    fingerprint = key_fingerprint(embedded) if embedded else ""
    if public_key_path is not None:
        expected = load_public_key(public_key_path)
        if embedded and expected != embedded:
            problems.append(f"the seal was signed with key {fingerprint}, not with the public key in "
                            f"{public_key_path} ({key_fingerprint(expected)})")
    elif embedded:
        notes.append(f"the signature was checked with the key inside the seal ({fingerprint}); pass --public-key "
                     "with the examiner's public key file to confirm who sealed the case")
    if str(payload.get("case_number")) != case_number:
        problems.append(f"the seal is for case {payload.get('case_number')!r}, this case is {case_number!r}")
    by_seq = {e.seq: e for e in entries}
    last_seq = entries[-1].seq if entries else 0
    sealed = by_seq.get(head_seq)
    if sealed is None:
        problems.append(f"the seal of {payload.get('sealed_utc')} covers {head_seq} audit entries, but the trail "
                        f"holds only {last_seq}: entries up to {head_seq} were removed (the trail was cut short)")
    elif sealed.entry_hash != head_hash:
        problems.append(f"audit entry {head_seq} hashes to {sealed.entry_hash}, but the seal of "
                        f"{payload.get('sealed_utc')} recorded {head_hash}: the trail up to the seal was rewritten")
    elif last_seq > head_seq:
        notes.append(f"{last_seq - head_seq} entries were added after the seal ({payload.get('sealed_utc')}); the "
                     "seal covers entries 1 to "
                     f"{head_seq} only")
    return SealCheck(path, str(payload.get("sealed_utc", "")), head_seq, head_hash, fingerprint, tuple(problems),
                     tuple(notes))
