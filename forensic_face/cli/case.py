"""Cases: ``case new|add-evidence|show|keygen|seal``, ``decide``, ``review``, ``verify``, ``replay``, ``report``.

Every command that writes to a case acts as an examiner (:func:`examiner_from_args`): the audit entries it
appends name them, never the operating-system user.

Results go to stdout; errors propagate to :func:`forensic_face.cli.main`, which prints them and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from forensic_face.cli.common import add_examiner_argument, examiner_from_args, utf8_path, utf8_text
from forensic_face.engine import ForensicFaceError
from forensic_face.faults import printable

log = logging.getLogger(__name__)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _lines(lines: list[str]) -> str:
    """Summary lines for the terminal, each escaped (they quote file names)."""
    return "\n".join(printable(line) for line in lines)


class VerifyCommand:
    name = "verify"
    help = "re-hash a case's evidence files and check its audit trail (exit 0 when intact, 1 otherwise)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("case", type=Path, help="case file (.ffcase)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--no-galleries", action="store_true", help="skip re-hashing gallery images")
        parser.add_argument("--no-record", action="store_true",
                            help="do not append the outcome to the case's audit trail")
        parser.add_argument("--seal", type=Path, default=None,
                            help="seal file ('case seal'): also check the trail was not cut short or rewritten")
        parser.add_argument("--public-key", type=Path, default=None,
                            help="the examiner's public key file (.pub): check the seal was signed with it")
        add_examiner_argument(parser, "the verify entry records")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.store.verify import verify_case

        if args.public_key is not None and args.seal is None:
            raise ForensicFaceError("--public-key checks a seal's signature; give the seal with --seal SEALFILE")
        try:
            report = verify_case(args.case, check_galleries=not args.no_galleries, record=not args.no_record,
                                 seal_path=args.seal, public_key_path=args.public_key,
                                 examiner=examiner_from_args(args))
        except ForensicFaceError as exc:
            if args.json:  # a reader of --json gets a document whatever happens
                _out(json.dumps({"case": str(args.case), "ok": False, "error": str(exc)}))
            raise
        _out(json.dumps(report.to_json(), indent=2) if args.json else _lines(report.summary_lines()))
        return 0 if report.ok else 1


class ReplayCommand:
    name = "replay"
    help = "re-run a logged search from the original files and show whether the ranking is identical"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("case", type=Path, help="case file (.ffcase)")
        parser.add_argument("search_id", type=int, help="search number (see 'case show')")
        parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                            help="run on another device than the one recorded")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_examiner_argument(parser, "the replay entry records")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.store.case_store import open_case
        from forensic_face.store.replay import replay_search

        with open_case(args.case, examiner_from_args(args)) as store:
            outcome = replay_search(store, args.search_id, device=args.device)
        _out(json.dumps(outcome.to_json(), indent=2) if args.json else _lines(outcome.summary_lines()))
        return 0 if outcome.identical else 1


class ReportCommand:
    name = "report"
    help = "write the case report (PDF) after verifying the case"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("case", type=Path, help="case file (.ffcase)")
        parser.add_argument("--out", type=Path, required=True, help="PDF file to write")
        parser.add_argument("--search", type=int, action="append", default=None,
                            help="report this search for its probe (repeatable, one per probe; only the probes "
                                 "of the searches given are reported); default: every probe with its latest "
                                 "search. Other searches of a reported probe are listed in an annex")
        parser.add_argument("--top", type=int, default=5, help="candidates shown with images per search")
        add_examiner_argument(parser, "the report is signed with and the export entry records")
        parser.add_argument("--force", action="store_true",
                            help="replace an existing file at --out (never evidence, a case file or a folder)")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.report.pdf import write_case_report

        outcome = write_case_report(args.case, args.out, search_ids=args.search, top=args.top,
                                    examiner=examiner_from_args(args), force=args.force)
        _out(f"wrote {outcome.path} ({outcome.num_pages} pages, SHA-256 {outcome.sha256}); "
             f"case verification: {'intact' if outcome.verification.ok else 'NOT INTACT'}")
        return 0


class CaseCommand:
    name = "case"
    help = "create a case, import evidence, show a case"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="case_action", required=True)
        new = sub.add_parser("new", help="create a case file")
        new.add_argument("case", help="case file path, or a bare name for <data dir>/cases/<name>.ffcase")
        new.add_argument("--number", type=utf8_text, required=True, help="case number")
        new.add_argument("--title", type=utf8_text, default="", help="case title")
        add_examiner_argument(new, "the case and its audit trail record")
        add = sub.add_parser("add-evidence", help="import evidence images (hashed, never modified)")
        add.add_argument("case", type=Path)
        add.add_argument("files", type=utf8_path, nargs="+")
        add.add_argument("--role", choices=("probe", "gallery"), default="probe")
        add_examiner_argument(add)
        show = sub.add_parser("show", help="case details, evidence, searches")
        show.add_argument("case", type=Path)
        show.add_argument("--json", action="store_true")
        keygen = sub.add_parser("keygen", help="create the examiner's Ed25519 key pair for sealing cases "
                                                "(private key 0600, public key beside it as FILE.pub)")
        keygen.add_argument("key", type=Path, help="private key file to create (never overwritten)")
        seal = sub.add_parser("seal", help="sign the audit trail's head hash with the examiner's key and export it "
                                           "(check it later with 'verify CASE --seal SEALFILE')")
        seal.add_argument("case", type=Path)
        seal.add_argument("--key", type=Path, required=True, help="the examiner's private key ('case keygen')")
        seal.add_argument("--out", type=Path, required=True, help="seal file to write (kept outside the case)")
        add_examiner_argument(seal)

    def run(self, args: argparse.Namespace) -> int:
        return {"new": self._new, "add-evidence": self._add, "show": self._show, "keygen": self._keygen,
                "seal": self._seal}[args.case_action](args)

    @staticmethod
    def _keygen(args: argparse.Namespace) -> int:
        from forensic_face.store.seal import generate_key_pair

        private_file, public_file, fingerprint = generate_key_pair(args.key)
        _out(f"wrote private key {private_file} (mode 0600: keep it to yourself) and public key {public_file}; "
             f"fingerprint {fingerprint}")
        return 0

    @staticmethod
    def _seal(args: argparse.Namespace) -> int:
        from forensic_face.store.verify import seal_case

        outcome = seal_case(args.case, args.key, args.out, examiner_from_args(args))
        _out(f"sealed {args.case} at audit entry {outcome['payload']['head_seq']} (head hash "
             f"{outcome['payload']['head_hash']}, key {outcome['payload']['key_fingerprint']}); wrote {args.out}")
        return 0

    @staticmethod
    def _new(args: argparse.Namespace) -> int:
        from forensic_face.settings import settings_path
        from forensic_face.store.case_store import CaseStore, default_case_path

        examiner = examiner_from_args(args)
        if examiner is None:
            raise ForensicFaceError(f"a case needs its examiner's name: give --examiner NAME, or save it once as "
                                    f"examiner = \"NAME\" in {settings_path()}")
        raw = str(args.case)
        path = Path(raw) if ("/" in raw or raw.endswith(".ffcase")) else default_case_path(raw)
        with CaseStore.create(path, args.number, args.title, examiner):
            pass
        _out(f"created {printable(path)}")
        return 0

    @staticmethod
    def _add(args: argparse.Namespace) -> int:
        from forensic_face.store.case_store import open_case

        with open_case(args.case, examiner_from_args(args)) as store:
            for file in args.files:
                item = store.add_evidence(file, args.role)
                _out(f"#{item.id} {item.role} {printable(item.path)} sha256 {item.sha256}")
        return 0

    @staticmethod
    def _show(args: argparse.Namespace) -> int:
        from forensic_face.store.case_store import open_case
        from forensic_face.store.history import case_history

        with open_case(args.case) as store:
            info = store.info()
            evidence = store.evidence_items()
            probes = case_history(store)
            entries = store.audit_entries()
        if args.json:
            _out(json.dumps({
                "case": str(info.path), "case_number": info.case_number, "title": info.title,
                "examiner": info.examiner, "created_utc": info.created_utc,
                "evidence": [{"id": e.id, "role": e.role, "path": str(e.path), "sha256": e.sha256} for e in evidence],
                "probes": [p.to_json() for p in probes],
                "searches": sorted((h.to_json() for p in probes for h in p.searches), key=lambda s: s["id"]),
                "audit_entries": len(entries), "audit_head": entries[-1].entry_hash if entries else None}, indent=2))
            return 0
        _out(f"Case {printable(info.case_number)}: {printable(info.title)}  (examiner {printable(info.examiner)}, "
             f"created {info.created_utc})")
        _out(f"File: {printable(info.path)}")
        _out(f"Evidence ({len(evidence)}):")
        for e in evidence:
            _out(f"  #{e.id} {e.role:7s} {printable(e.path)}  sha256 {e.sha256}")
        _out(f"Probes ({len(probes)}), each probe's searches latest first:")
        for probe in probes:
            box = ", ".join(f"{v:.0f}" for v in probe.latest.search.face.box)
            _out(f"  Probe {printable(probe.evidence.path.name)} (evidence #{probe.evidence.id}, face [{box}]): "
                 f"{len(probe.searches)} searches")
            reported = probe.chosen().search.id
            for h in reversed(probe.searches):
                s = h.search
                _out(f"    #{s.id}{' (reported)' if s.id == reported else ''} {s.created_utc} by "
                     f"{printable(h.examiner)}, settings {h.settings_digest[:12]}"
                     + ("" if h.change is None else f"; {printable(h.change.describe())}"))
                for c in s.candidates[:3]:
                    d = c.decision
                    marker = f", carried from #{d.carried_from_search}" if d.carried else ""
                    _out(f"      {c.candidate.rank}. {printable(c.candidate.identity)} ({c.candidate.score:.3f}, "
                         f"{d.decision}{marker})")
                for c in h.carried.not_carried:
                    _out(f"      not carried (no longer a candidate): {printable(c['identity'])}: {c['decision']} "
                         f"(search #{c['from_search_id']})")
                for r in h.reviews:
                    _out(f"      review by {printable(r.reviewer)} {r.utc}: {r.verdict}"
                         + (f": {printable(r.note)}" if r.note else ""))
        _out(f"Audit trail: {len(entries)} entries, head {entries[-1].entry_hash if entries else '-'}")
        return 0


class DecideCommand:
    name = "decide"
    help = "record the examiner's decision on a candidate of a logged search (kept in the audit trail)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.store.records import DECISIONS

        parser.add_argument("case", type=Path, help="case file (.ffcase)")
        parser.add_argument("search_id", type=int, help="search number (see 'case show')")
        parser.add_argument("rank", type=int, help="candidate rank in that search")
        parser.add_argument("decision", choices=DECISIONS, help="the examiner's decision")
        parser.add_argument("--note", type=utf8_text, default="", help="why (shown in the report)")
        add_examiner_argument(parser, "the decision and its audit entry record")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.store.case_store import open_case

        with open_case(args.case, examiner_from_args(args)) as store:
            store.set_decision(args.search_id, args.rank, args.decision, args.note)
            stored = store.search(args.search_id)
        candidate = next(c for c in stored.candidates if c.candidate.rank == args.rank)
        _out(f"search #{args.search_id}, rank {args.rank} ({printable(candidate.candidate.identity)}): "
             f"{candidate.decision.decision} by {printable(candidate.decision.examiner)}"
             + (f": {printable(candidate.decision.note)}" if candidate.decision.note else ""))
        return 0


class ReviewCommand:
    name = "review"
    help = ("record a second examiner's verification of a search's decisions (agree, disagree, inconclusive); "
            "the reviewer must not be an examiner who made them")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from forensic_face.store.records import VERDICTS

        parser.add_argument("case", type=Path, help="case file (.ffcase)")
        parser.add_argument("search_id", type=int, help="search number (see 'case show')")
        parser.add_argument("--verdict", choices=VERDICTS, required=True, help="the reviewer's verdict")
        parser.add_argument("--note", type=utf8_text, default="", help="why (shown in the report)")
        add_examiner_argument(parser, "of the reviewer, which the review and its audit entry record")

    def run(self, args: argparse.Namespace) -> int:
        from forensic_face.store.case_store import open_case

        reviewer = examiner_from_args(args)
        if reviewer is None:
            raise ForensicFaceError("a review needs the reviewer's name: give --examiner NAME (the second "
                                    "examiner, not the one who decided)")
        with open_case(args.case, reviewer) as store:
            review = store.record_review(args.search_id, reviewer, args.verdict, args.note)
        _out(f"search #{review.search_id}: reviewed by {printable(review.reviewer)}: {review.verdict}"
             + (f": {printable(review.note)}" if review.note else "")
             + f" ({len(review.decisions)} decisions reviewed)")
        return 0
