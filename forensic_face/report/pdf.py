"""Case report as PDF (reportlab): evidence with verification, a summary of leads per probe, one section per
probe (the search the examiner chose, the latest by default), method, log, sign-off, and an annex listing the
superseded searches.

The report is built only from what the case file stores (no recomputation) plus a verification run at report
time. reportlab draws without a GUI thread or display, so the same code serves the CLI, the GUI (from a worker)
and CI; the layout depends only on the case content. Exporting appends an ``export`` entry (with the PDF's
SHA-256) to the audit trail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PILImage

import forensic_face
from forensic_face.calibration import CALIBRATION_CAVEAT, format_lr, verbal_equivalent
from forensic_face.calibration.open_set import OPEN_SET_CAVEAT, OpenSetCue, open_set_cue
from forensic_face.engine.degradations import describe_path
from forensic_face.engine import CaseStoreError, frames_searched_text
from forensic_face.store.audit import AuditEntry, canonical_json
from forensic_face.store.rows import ROWS_KEY
from forensic_face.store.case_store import open_case
from forensic_face.store.codecs import encode_png
from forensic_face.store.history import ProbeHistory, SearchHistory, case_history
from forensic_face.store.output import atomic_output, check_output_path
from forensic_face.store.records import CaseInfo, EvidenceItem, StoredCandidate, StoredSearch
from forensic_face.store.verify import VerificationReport, verify_record, verify_store

log = logging.getLogger(__name__)

PAPER_CITATION = (
    "K. Grm, B. K. Özata, V. Štruc, H. K. Ekenel, \"Meet-in-the-middle: Multi-scale upsampling and matching for "
    "cross-resolution face recognition\", in Proceedings of the IEEE/CVF Winter Conference on Applications of "
    "Computer Vision (WACV) Workshops, 2023."
)
ENHANCED_LABEL = "ENHANCED IMAGE: INVESTIGATIVE LEAD ONLY"
LIMITATIONS = (
    "Cross-resolution face matching ranks gallery identities by similarity to a low-resolution probe. The ranked "
    "list gives candidates (investigative leads) for review by a trained examiner; it is not an identification "
    "and must not be presented as one.",
    "Enhanced (super-resolved) images are hypotheses produced by an algorithm. They contain detail that was not "
    "recorded by the camera and must not be used for facial comparison by eye or shown as a likeness of a person.",
    "Likelihood ratios, where given, come from a calibration on reference data under stated conditions (face-width "
    "band). The conditions of this case (camera, compression, pose, illumination, age difference, population) may "
    "differ; the value is only as valid as that correspondence.",
    "Accuracy figures for this software were measured on the LFW data set (web photographs of mostly well-known "
    "adults under synthetic degradation), not on casework. Performance on real surveillance footage can be lower.",
    "A candidate's absence from the list does not exclude that person; the person may be absent from the gallery, "
    "or the probe may be too poor to rank them highly.",
)
METHOD_TEXT = (
    "The probe face is cropped (face box enlarged 1.3x, made square) and super-resolved to several intermediate "
    "scales, each with several blur hypotheses. Every gallery portrait is degraded at random (blur, noise, "
    "down-sampling chains) and resampled to the same intermediate resolutions, so probe and gallery are compared "
    "at matching resolution (\"meet in the middle\"). A face recognition network embeds every hypothesis; the "
    "similarities of all probe x gallery hypotheses are fused across hypotheses and scales into one score per "
    "gallery identity, which ranks the gallery. The processing parameters, model names, weight hashes and seeds "
    "of each search are listed with it and in the processing log, so the search can be replayed "
    "(forensic-face replay CASE SEARCH_ID)."
)


@dataclass(frozen=True)
class ReportOutcome:
    path: Path
    num_pages: int
    sha256: str
    verification: VerificationReport


# ----------------------------------------------------------------------------------------------- styling
def _fonts() -> tuple[str, str, str]:
    """Register DejaVu (shipped with matplotlib, full Unicode) once; fall back to the PDF base fonts."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "FF-Sans" in pdfmetrics.getRegisteredFontNames():
        return "FF-Sans", "FF-Sans-Bold", "FF-Mono"
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("FF-Sans", str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("FF-Sans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
        pdfmetrics.registerFont(TTFont("FF-Mono", str(folder / "DejaVuSansMono.ttf")))
        pdfmetrics.registerFontFamily("FF-Sans", normal="FF-Sans", bold="FF-Sans-Bold", italic="FF-Sans",
                                      boldItalic="FF-Sans-Bold")
        return "FF-Sans", "FF-Sans-Bold", "FF-Mono"
    except (OSError, ImportError) as exc:  # font files missing: Latin-1 base fonts still work
        log.warning("DejaVu fonts unavailable (%s); using Helvetica", exc)
        return "Helvetica", "Helvetica-Bold", "Courier"


class _Styles:
    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle

        sans, bold, mono = _fonts()
        self.sans, self.bold, self.mono = sans, bold, mono
        self.title = ParagraphStyle("title", fontName=bold, fontSize=17, leading=21, spaceAfter=4)
        self.subtitle = ParagraphStyle("subtitle", fontName=sans, fontSize=10, leading=13, spaceAfter=10,
                                       textColor=colors.HexColor("#444444"))
        self.h1 = ParagraphStyle("h1", fontName=bold, fontSize=13, leading=16, spaceBefore=10, spaceAfter=5)
        self.h2 = ParagraphStyle("h2", fontName=bold, fontSize=10.5, leading=13, spaceBefore=7, spaceAfter=3)
        self.body = ParagraphStyle("body", fontName=sans, fontSize=8.8, leading=11.5, spaceAfter=4)
        self.small = ParagraphStyle("small", fontName=sans, fontSize=7.2, leading=9)
        self.cell = ParagraphStyle("cell", fontName=sans, fontSize=7.6, leading=9.4)
        self.cell_bold = ParagraphStyle("cellb", fontName=bold, fontSize=7.6, leading=9.4)
        self.mono = ParagraphStyle("mono", fontName=mono, fontSize=6.4, leading=8)
        self.ok = ParagraphStyle("ok", parent=self.body, textColor=colors.HexColor("#17603a"), fontName=bold)
        self.bad = ParagraphStyle("bad", parent=self.body, textColor=colors.HexColor("#b00020"), fontName=bold)
        self.warning = ParagraphStyle("warn", fontName=bold, fontSize=7.4, leading=9,
                                      textColor=colors.HexColor("#b00020"))
        self.caption = ParagraphStyle("caption", fontName=sans, fontSize=6.8, leading=8.4, alignment=1)


def _p(text: str, style: Any) -> Any:
    from reportlab.platypus import Paragraph

    return Paragraph(escape(str(text)).replace("\n", "<br/>"), style)


def _table(rows: list[list[Any]], widths: Sequence[float], header: bool = True, zebra: bool = True) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=list(widths), repeatRows=1 if header else 0)
    commands: list[tuple[Any, ...]] = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")))
    if zebra:
        for r in range(1 if header else 0, len(rows)):
            if r % 2 == 0:
                commands.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#f4f6f8")))
    table.setStyle(TableStyle(commands))
    return table


#: Resolution at which a shown image is embedded: a portrait crop of a 1350 px photo shown 76 pt wide needs
#: about 210 px, not its 700, so a report's size follows what it shows, not its sources.
EMBED_DPI = 200


def embedded_pixels(pixels: np.ndarray, width_pt: float, nearest: bool = True) -> np.ndarray:
    """The pixels embedded for an image shown ``width_pt`` wide: enlarged by whole-pixel replication when
    ``nearest`` (so viewers cannot smooth the pixels away), otherwise shrunk (area) to :data:`EMBED_DPI` when
    they have more. An image shown at one point per pixel or more (the native probe crop) is never shrunk.

    >>> embedded_pixels(np.zeros((700, 700, 3), np.uint8), 76.0, nearest=False).shape
    (212, 212, 3)
    >>> embedded_pixels(np.zeros((20, 30, 3), np.uint8), 110.0).shape
    (80, 120, 3)
    """
    height, width = pixels.shape[:2]
    if nearest and width_pt > width:
        factor = max(1, int(np.ceil(width_pt / width)))
        if factor > 1:
            return np.asarray(PILImage.fromarray(pixels).resize((width * factor, height * factor),
                                                                PILImage.Resampling.NEAREST))
        return pixels
    max_px = int(np.ceil(width_pt / 72.0 * EMBED_DPI))
    if not nearest and width > max_px:
        new_h = max(1, round(height * max_px / width))
        return np.asarray(PILImage.fromarray(pixels).resize((max_px, new_h), PILImage.Resampling.BOX))
    return pixels


#: JPEG quality of the images a report may embed lossy (see :func:`encoded_for_report`); chroma is not subsampled.
JPEG_QUALITY = 90
#: Width at which the enhanced hypotheses are shown in the probe panel; a candidate's best hypothesis (shown
#: smaller) is embedded for this width too, so a hypothesis shown in both places is embedded once.
HYPOTHESIS_SHOWN_PT = 90.0


def encoded_for_report(pixels: np.ndarray, lossless: bool) -> bytes:
    """How an image is embedded: PNG (lossless) for the probe crop, which is evidence, and for any image enlarged
    by pixel replication (its pixels are the point, and replicated pixels compress well); JPEG at
    :data:`JPEG_QUALITY` for photographs and renderings shown at print resolution (gallery portraits, enhanced
    hypotheses labelled as investigative leads, degraded gallery variants), about a fifth of the bytes."""
    if lossless:
        return encode_png(pixels)
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(pixels)).convert("RGB").save(
        buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def _image(pixels: np.ndarray, width_pt: float, nearest: bool = True, lossless: bool = False,
           embed_width_pt: float | None = None) -> Any:
    """A reportlab image of ``pixels`` shown ``width_pt`` wide, embedded (:func:`embedded_pixels`) for
    ``embed_width_pt`` (default ``width_pt``). Identical embedded pixels are stored once in the PDF (reportlab
    keys its image objects by their pixels), so an image shown in several sections costs its bytes once."""
    from reportlab.platypus import Image

    height, width = pixels.shape[:2]
    shown = embedded_pixels(pixels, embed_width_pt or width_pt, nearest)
    replicated = shown.shape[1] > width
    return Image(io.BytesIO(encoded_for_report(shown, lossless or replicated)), width=width_pt,
                 height=width_pt * height / width)


@contextmanager
def _binary_streams() -> Iterator[None]:
    """Streams (images, pages) written as binary, not ASCII85 text, which is a quarter larger: reportlab's
    switch is the process-wide ``rl_config.useA85``, set for the build and restored."""
    from reportlab import rl_config

    before = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = before


def _figure_png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def _heatmaps(similarity: dict[int, np.ndarray], sigmas: dict[int, list[float]]) -> bytes:
    """One heatmap per scale: rows = probe hypotheses (blur sigma), columns = gallery hypotheses."""
    from matplotlib.figure import Figure

    scales = sorted(similarity)
    figure = Figure(figsize=(2.0 * len(scales) + 0.6, 1.9), layout="constrained")
    axes = figure.subplots(1, len(scales), squeeze=False)[0]
    vmin = min(float(np.min(m)) for m in similarity.values())
    vmax = max(float(np.max(m)) for m in similarity.values())
    for ax, scale in zip(axes, scales):
        matrix = np.asarray(similarity[scale], dtype=np.float32)
        shown = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(f"scale x{scale}", fontsize=7)
        ax.set_xlabel("gallery hypotheses", fontsize=6)
        if ax is axes[0]:
            ax.set_ylabel("probe blur sigma", fontsize=6)
        ax.set_xticks([])
        labels = sigmas.get(scale, [])
        if labels and len(labels) == matrix.shape[0]:
            ticks = np.linspace(0, len(labels) - 1, min(4, len(labels))).round().astype(int)
            ax.set_yticks(ticks, [f"{labels[t]:.2f}" for t in ticks])
        ax.tick_params(labelsize=5)
    colorbar = figure.colorbar(shown, ax=list(axes), fraction=0.04, pad=0.02)
    colorbar.ax.tick_params(labelsize=5)
    colorbar.set_label("similarity", fontsize=6)
    return _figure_png(figure)


def _weights_text(provenance: dict[str, Any]) -> str:
    """``name: sha256`` lines for the recognizer, upsampler and detector recorded in a search's provenance."""
    lines = []
    for role in ("recognizer", "upsampler", "detector"):
        item = provenance.get(role)
        if isinstance(item, dict):
            sha = item.get("weights_sha256")
            if isinstance(sha, dict):
                sha = "; ".join(f"{k}: {v}" for k, v in sha.items()) or "no weights"
            lines.append(f"{role} {item.get('name', '?')}: {sha or 'no weights'}")
    if not lines and isinstance(provenance.get("weights"), dict):
        lines = [f"{k}: {v}" for k, v in provenance["weights"].items()]
    return "\n".join(lines)


def _short(value: Any, limit: int = 240) -> str:
    text = canonical_json(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 20] + f"... [{len(text)} characters]"


#: Characters of free text (a title, a decision note) shown inside a table cell. A table row cannot be split
#: across pages, so longer text is cut there and printed in full below the table as ordinary paragraphs.
CELL_TEXT_LIMIT = 300


def _cell_text(text: str, where: str) -> tuple[str, bool]:
    """``text`` cut for a table cell (saying it continues ``where``), and whether it was cut."""
    if len(text) <= CELL_TEXT_LIMIT:
        return text, False
    return text[: CELL_TEXT_LIMIT - 40].rstrip() + f"… [{len(text)} characters; in full {where}]", True


def _fit_width(text: str, font: str, size: float, width_pt: float) -> str:
    """``text`` cut with an ellipsis so it is at most ``width_pt`` wide when drawn (the running header)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= width_pt:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if stringWidth(text[:middle] + "…", font, size) <= width_pt:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def _entry_summary(entry: AuditEntry) -> str:
    """A readable one-paragraph summary of an audit entry's details (full details stay in the case file)."""
    details = dict(entry.details)
    if isinstance(details.get(ROWS_KEY), dict):
        details[ROWS_KEY] = f"<{sum(len(v) for v in details[ROWS_KEY].values())} row hashes>"
    for key in ("images", "candidates", "items", "problems", "files_not_ok", "provenance", "config", "landmarks"):
        if isinstance(details.get(key), list) and len(canonical_json(details[key])) > 160:
            details[key] = f"<{len(details[key])} items>"
    if isinstance(details.get("provenance"), dict):
        details["provenance"] = "<recorded>"
    if isinstance(details.get("config"), dict):
        details["config"] = "<recorded>"
    return _short(details)


# ------------------------------------------------------------------------------------------------- builder
@dataclass(frozen=True)
class ReportedProbe:
    """One probe in the report: its searches and the one reported in full (the others go to the annex)."""

    history: ProbeHistory
    chosen: SearchHistory

    @property
    def superseded(self) -> tuple[SearchHistory, ...]:
        return tuple(h for h in self.history.searches if h.search.id != self.chosen.search.id)


def choose_reported_probes(probes: Sequence[ProbeHistory], search_ids: Sequence[int] | None) -> list[ReportedProbe]:
    """Every probe with the search the examiner chose for it (the latest unless chosen otherwise); with
    ``search_ids``, only the probes of those searches, each with the latest of the given searches. An id that is
    no search of the case is an error (a typo must not silently report another search)."""
    if not search_ids:
        return [ReportedProbe(p, p.chosen()) for p in probes]
    known = {h.search.id for p in probes for h in p.searches}
    unknown = sorted(set(search_ids) - known)
    if unknown:
        raise CaseStoreError(f"no search {', '.join(f'#{i}' for i in unknown)} in this case; known: "
                             f"{', '.join(f'#{i}' for i in sorted(known)) or 'none'} (see 'forensic-face case show')")
    return [ReportedProbe(p, p.chosen(search_ids)) for p in probes
            if any(h.search.id in set(search_ids) for h in p.searches)]


def _lr_text(candidate: StoredCandidate) -> str:
    lr = 10.0 ** float(candidate.log10_lr or 0.0)
    return f"{lr:.3g}" if 1e-3 <= lr <= 1e4 else f"10^{candidate.log10_lr:.1f}"


def _decision_text(decision: Any) -> str:
    """A decision as the report states it, saying where a carried one was made and by whom."""
    text = decision.decision
    if decision.carried:
        text += (f" (carried from search #{decision.carried_from_search}, rank {decision.carried_from_rank}; "
                 f"{decision.examiner}, {decision.utc})")
    return text


class _ReportBuilder:
    def __init__(self, info: CaseInfo, evidence: list[EvidenceItem], probes: list[ReportedProbe],
                 entries: list[AuditEntry], verification: VerificationReport, generated_utc: str, top: int) -> None:
        self.info, self.evidence, self.probes, self.entries = info, evidence, probes, entries
        self.verification, self.generated_utc, self.top = verification, generated_utc, top
        self.s = _Styles()
        self.width = 0.0
        self._section = 0
        self._open_set_cues: dict[int, OpenSetCue] = {}

    def _h1(self, title: str) -> Any:
        """A numbered section heading (numbers follow the order sections are built in)."""
        self._section += 1
        return _p(f"{self._section}. {title}", self.s.h1)

    def build(self, out: Path) -> int:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm
        from reportlab.platypus import SimpleDocTemplate

        doc = SimpleDocTemplate(str(out), pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=18 * mm,
                                bottomMargin=16 * mm, title=f"Case {self.info.case_number}: face comparison report",
                                author=self.info.examiner, creator=f"forensic_face {forensic_face.__version__}",
                                subject="Cross-resolution face comparison: investigative leads")
        self.width = doc.width
        story: list[Any] = []
        self._section = 0
        story += self._front()
        story += self._evidence()
        story += self._leads()
        for probe in self.probes:
            story += self._search(probe)
        story += self._method()
        story += self._log()
        story += self._signoff()
        story += self._annex()
        with _binary_streams():
            doc.build(story, onFirstPage=self._decorate, onLaterPages=self._decorate)
        return int(doc.page)

    def _decorate(self, canvas: Any, doc: Any) -> None:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm
        from reportlab.pdfbase.pdfmetrics import stringWidth

        canvas.saveState()
        canvas.setFont(self.s.sans, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        top = A4[1] - 11 * mm
        right = "Face comparison report: investigative leads, not identifications"
        room = A4[0] - 32 * mm - stringWidth(right, self.s.sans, 7) - 12
        canvas.drawString(16 * mm, top, _fit_width(f"Case {self.info.case_number}: {self.info.title}", self.s.sans, 7,
                                                   room))
        canvas.drawRightString(A4[0] - 16 * mm, top, right)
        canvas.setStrokeColor(colors.HexColor("#999999"))
        canvas.line(16 * mm, top - 2, A4[0] - 16 * mm, top - 2)
        canvas.drawString(16 * mm, 9 * mm, f"forensic_face {forensic_face.__version__}, generated "
                                            f"{self.generated_utc}")
        canvas.drawRightString(A4[0] - 16 * mm, 9 * mm, f"Page {doc.page}")
        canvas.restoreState()

    # ---- sections
    def _front(self) -> list[Any]:
        from reportlab.platypus import Spacer

        s, info = self.s, self.info
        cells = {name: _cell_text(value, "below this table") for name, value in
                 (("Case number", info.case_number), ("Title", info.title), ("Examiner", info.examiner))}
        rows = [
            [_p("Case number", s.cell_bold), _p(cells["Case number"][0], s.cell)],
            [_p("Title", s.cell_bold), _p(cells["Title"][0], s.cell)],
            [_p("Examiner", s.cell_bold), _p(cells["Examiner"][0], s.cell)],
            [_p("Case opened (UTC)", s.cell_bold), _p(info.created_utc, s.cell)],
            [_p("Report generated (UTC)", s.cell_bold), _p(self.generated_utc, s.cell)],
            [_p("Case file", s.cell_bold), _p(str(info.path), s.cell)],
            [_p("Software", s.cell_bold), _p(f"forensic_face {forensic_face.__version__} "
                                             f"(case schema {info.schema_version})", s.cell)],
            [_p("Searches reported", s.cell_bold),
             _p(", ".join(f"#{p.chosen.search.id}" for p in self.probes) or "none", s.cell)],
        ]
        return [
            _p("Face comparison report", s.title),
            _p("Cross-resolution face search (Meet-in-the-middle). The results are candidates for review by an "
               "examiner, not identifications.", s.subtitle),
            self._h1("Case"), _table(rows, [45 * 2.835, self.width - 45 * 2.835], header=False, zebra=False),
            *[_p(f"{name} in full: {value}", s.body) for name, value in
              (("Case number", info.case_number), ("Title", info.title), ("Examiner", info.examiner))
              if cells[name][1]],
            Spacer(1, 4),
        ]

    def _evidence(self) -> list[Any]:
        s, v = self.s, self.verification
        out: list[Any] = [self._h1("Evidence and integrity")]
        rows = [[_p(h, s.cell_bold) for h in ("#", "Role", "File", "Imported (UTC)", "Size / pixels", "SHA-256")]]
        for e in self.evidence:
            rows.append([_p(str(e.id), s.cell), _p(e.role, s.cell), _p(str(e.path), s.cell), _p(e.imported_utc, s.cell),
                         _p(f"{e.size_bytes:,} B\n{e.width} x {e.height} {e.format}", s.cell), _p(e.sha256, s.mono)])
        w = self.width
        out.append(_table(rows, [14, 34, w * 0.30, 62, 62, w - 172 - w * 0.30]))
        checked = sum(f.status == "ok" for f in v.files)
        if v.ok:
            out.append(_p(f"Verified at report time ({v.utc}): all {len(v.files)} evidence and gallery files were "
                          f"re-read from their original locations and match their recorded SHA-256; the audit trail "
                          f"({v.chain.num_entries} entries) is an intact hash chain; and all {v.rows.num_rows} rows of "
                          "the case's tables (case details, searches, candidates, stored images, decisions) are the "
                          "ones the audit trail recorded.", s.ok))
            for note in v.notes:
                out.append(_p(f"Not guaranteed: {note}", s.small))
        else:
            out.append(_p(f"VERIFICATION FAILED at report time ({v.utc}): {checked} of {len(v.files)} files match; "
                          "details below. Results that depend on the affected items must not be relied on until "
                          "this is resolved.", s.bad))
            for line in v.summary_lines()[1:]:
                out.append(_p(line, s.small))
        out.append(_p(f"Audit trail head hash (record it outside the case file to anchor the chain): "
                      f"{v.chain.head_hash}", s.small))
        return out

    def _leads(self) -> list[Any]:
        """Up front: per probe, the search reported, its candidates marked possible lead (with LR) and reviews."""
        s, w = self.s, self.width
        first_probe = self._section + 2
        out: list[Any] = [self._h1("Summary of leads per probe"),
                          _p(f"Sections {first_probe} to {first_probe + len(self.probes) - 1} give each probe in "
                             "full. A possible lead is a candidate for further investigation, not an identification."
                             if self.probes else "No search is reported.", s.small)]
        rows = [[_p(h, s.cell_bold) for h in ("Section", "Probe", "Search used", "Possible leads (LR)", "Review")]]
        for k, probe in enumerate(self.probes):
            search = probe.chosen.search
            leads = [c for c in search.candidates if c.decision.decision == "possible lead"]
            lead_text = "; ".join(f"rank {c.candidate.rank} {c.candidate.identity}"
                                  + (f" (LR {_lr_text(c)})" if c.log10_lr is not None else "")
                                  + (" (carried)" if c.decision.carried else "") for c in leads) or "none"
            cue = self._open_set(search)
            if cue.may_be_absent:
                lead_text += f". Open set: the person may not be in the gallery (open-set LR {format_lr(cue.lr or 0)})"
            reviews = "; ".join(f"{r.reviewer}: {r.verdict}" for r in probe.chosen.reviews) or "not reviewed"
            used = (f"#{search.id}, {search.created_utc[:16].replace('T', ' ')}"
                    + (f" ({len(probe.superseded)} earlier in annex)" if probe.superseded else ""))
            rows.append([_p(str(first_probe + k), s.cell), _p(f"{search.probe.path.name} (evidence #{search.probe.id})",
                                                              s.cell),
                         _p(used, s.cell), _p(lead_text, s.cell), _p(reviews, s.cell)])
        out.append(_table(rows, [40, w * 0.22, w * 0.2, w - 40 - w * 0.62, w * 0.2]))
        return out

    def _search(self, probe: ReportedProbe) -> list[Any]:
        from reportlab.platypus import CondPageBreak, KeepTogether, Spacer

        s, w = self.s, self.width
        search = probe.chosen.search
        cfg, prov = search.config, search.provenance
        out: list[Any] = [CondPageBreak(200), self._h1(f"Probe {search.probe.path.name}: search #{search.id}")]
        if probe.superseded:
            out.append(_p(f"This probe was searched {len(probe.history.searches)} times; this section reports search "
                          f"#{search.id}. The others ({', '.join(f'#{h.search.id}' for h in probe.superseded)}) are "
                          "listed in the annex.", s.small))
        face = search.face
        weights = _weights_text(prov)
        software = prov.get("software")
        params = [
            ("Probe", f"evidence #{search.probe.id}: {search.probe.path}"),
            ("Probe SHA-256", search.probe.sha256),
            ("Face", f"{'drawn by the examiner' if face.manual else 'detected automatically'}; box "
                     f"{', '.join(f'{v:.1f}' for v in face.box)}; width {face.width_px:.1f} px"),
            ("Run (UTC)", f"{search.created_utc}; status {search.status}; seed {search.seed}"),
            ("Settings", f"recognizer {cfg.recognizer}; upsampler {cfg.upsampler}; scales "
                         f"{', '.join(f'x{x}' for x in cfg.scales)}; {cfg.num_blur_hypotheses} blur hypotheses "
                         f"(sigma <= {cfg.max_blur_sigma}); degradation budget {cfg.budget}; resolution matching "
                         f"{'on' if cfg.resolution_matching else 'off'}; fusion {cfg.fusion}; device "
                         f"{prov.get('device', cfg.device)}"),
            ("Model weights", weights or "see processing log"),
            ("Software", _short(software, 400) if software else f"forensic_face {forensic_face.__version__}"),
            ("Gallery", f"{len(search.ranking)} identities ranked (gallery record #{search.gallery_id})"),
        ]
        video = prov.get("video")
        if isinstance(video, dict):
            frames = "; ".join(f"frame {f['index']} at {f['time_s']:.2f} s (quality {f['quality']:.1f}, pixels "
                               f"SHA-256 {f['frame_sha256']})" for f in video.get("frames", []))
            used = frames_searched_text(len(video.get("frames", [])))
            how = f" ({video.get('fusion')})" if len(video.get("frames", [])) > 1 else ""
            params.insert(3, ("Video", f"track {video.get('track')} of a clip of {video.get('frame_count')} frames "
                                       f"at {video.get('fps', 0):.2f} fps; {used}{how}: {frames}. The face shown "
                                       "is the best frame's."))
        out.append(_table([[_p(k, s.cell_bold), _p(v, s.mono if "SHA" in k or k == "Model weights" else s.cell)]
                           for k, v in params], [70, w - 70], header=False, zebra=False))
        out.append(Spacer(1, 5))
        out.append(KeepTogether(self._probe_panel(search)))
        out.append(CondPageBreak(140))
        out.append(_p("Ranked candidates", s.h2))
        rows = [[_p(h, s.cell_bold) for h in ("Rank", "Identity", "Score", "LR", "Verbal equivalent (ENFSI 2015)",
                                              "Examiner decision")]]
        long_notes: list[tuple[int, str]] = []
        for c in search.candidates:
            cand = c.candidate
            if c.log10_lr is None:
                lr_text, verbal = "not calibrated", "-"
            else:
                lr_text, verbal = _lr_text(c), verbal_equivalent(10.0 ** c.log10_lr)
            note, cut = _cell_text(c.decision.note, "below this table")
            if cut:
                long_notes.append((cand.rank, c.decision.note))
            decision = _decision_text(c.decision) + (f": {note}" if note else "")
            rows.append([_p(str(cand.rank), s.cell), _p(cand.identity, s.cell), _p(f"{cand.score:.4f}", s.cell),
                         _p(lr_text, s.cell), _p(verbal, s.cell), _p(decision, s.cell)])
        out.append(_table(rows, [30, w * 0.25, 42, 50, w * 0.27, w - 122 - w * 0.52]))
        for rank, note in long_notes:
            out.append(_p(f"Examiner's note on rank {rank} in full: {note}", s.body))
        if search.calibration is not None:
            cal = search.calibration
            out.append(_p(f"LRs from the calibration for the {cal.get('band_px')} px face-width band "
                          f"({cal.get('num_mated')} mated / {cal.get('num_nonmated')} non-mated reference "
                          f"comparisons, Cllr {float(cal.get('cllr', float('nan'))):.3f}, bounded to "
                          f"log10 LR in [{float(cal.get('lower_log10_lr', 0)):.2f}, "
                          f"{float(cal.get('upper_log10_lr', 0)):.2f}] by ELUB). {cal.get('conditions', '')} "
                          f"{CALIBRATION_CAVEAT}", s.small))
        else:
            out.append(_p("No likelihood ratios: no calibration was applied to this search. Scores are "
                          "similarities for ranking only and do not express evidential strength.", s.small))
        out += self._open_set_paragraphs(search)
        for c in probe.chosen.carried.not_carried:
            out.append(_p(f"Not carried to this search: the decision '{c['decision']}' on {c['identity']} (search "
                          f"#{c['from_search_id']}, rank {c['from_rank']}; {c['examiner']}, {c['decided_utc']}): "
                          f"{c['identity']} is no longer among the candidates.", s.small))
        out.append(_p("Review", s.h2))
        if not probe.chosen.reviews:
            out.append(_p("No second examiner has reviewed the decisions of this search.", s.small))
        for r in probe.chosen.reviews:
            out.append(_p(f"{r.reviewer} ({r.utc}): {r.verdict} with the decisions on ranks "
                          f"{', '.join(sorted(r.decisions, key=int)) or 'none'}" + (f". {r.note}" if r.note else ""),
                          s.body))
        for stored in search.candidates[: self.top]:
            out.append(KeepTogether(self._candidate_panel(search, stored)))
        return out

    def _annex(self) -> list[Any]:
        """Superseded searches: id, time, who, top 3; their full record stays in the case."""
        from reportlab.platypus import CondPageBreak

        s, w = self.s, self.width
        superseded = [(p, h) for p in self.probes for h in p.superseded]
        if not superseded:
            return []
        rows = [[_p(h, s.cell_bold) for h in ("Search", "Probe", "Run (UTC)", "By", "Top 3 (decision)")]]
        for probe, h in superseded:
            top = "; ".join(f"{c.candidate.rank}. {c.candidate.identity} ({c.decision.decision})"
                            for c in h.search.candidates[:3])
            rows.append([_p(f"#{h.search.id}", s.cell), _p(h.search.probe.path.name, s.cell),
                         _p(h.search.created_utc.replace("T", " "), s.small), _p(h.examiner, s.cell), _p(top, s.cell)])
        return [CondPageBreak(150), _p("Annex A. Superseded searches", s.h1),
                _p("Earlier searches of the probes above, not reported in full: the report uses the search named in "
                   "each probe's section. The case file keeps every search with its settings, images and decisions "
                   "('forensic-face case show').", s.small),
                _table(rows, [40, w * 0.2, 90, 70, w - 200 - w * 0.2])]

    def _probe_panel(self, search: StoredSearch) -> list[Any]:
        s = self.s
        crop = search.probe_crop
        cells = [_image(crop, float(crop.shape[1]), nearest=False, lossless=True),
                 _image(crop, 110.0, lossless=True)]
        captions = [f"probe crop, native size\n{crop.shape[1]} x {crop.shape[0]} px",
                    "probe crop enlarged\n(nearest neighbour, no enhancement)"]
        best = search.candidates[0].candidate if search.candidates else None
        for scale, hyps in search.probe_hypotheses.items():
            if not hyps:
                continue
            index = 0
            if best is not None and scale in best.similarity and best.similarity[scale].shape[0] == len(hyps):
                index = int(np.argmax(best.similarity[scale].max(axis=1)))
            hyp = hyps[index]
            cells.append(_image(hyp.image, HYPOTHESIS_SHOWN_PT, nearest=False))
            captions.append(f"x{scale}, sigma {hyp.sigma:.2f}\n{ENHANCED_LABEL}")
        cells = cells[:6]
        captions = captions[:6]
        widths = [max(float(crop.shape[1]) + 8, 60)] + [118] + [96] * (len(cells) - 2)
        table = _table([cells, [_p(c, s.caption if k < 2 else s.warning) for k, c in enumerate(captions)]],
                       widths, header=False, zebra=False)
        return [_p("Probe and enhanced hypotheses", s.h2), table,
                _p("Enhanced images are algorithmic hypotheses, shown for the best-matching blur hypothesis of the "
                   "top-ranked candidate at each scale. They must not be compared by eye with a person or used as a "
                   "likeness.", s.small)]

    def _candidate_panel(self, search: StoredSearch, stored: Any) -> list[Any]:
        from reportlab.platypus import Image, Spacer

        s = self.s
        cand = stored.candidate
        header = f"Rank {cand.rank}: {cand.identity} (score {cand.score:.4f}"
        if stored.log10_lr is not None:
            header += f", LR {10.0 ** stored.log10_lr:.3g}"
        header += f"; decision: {stored.decision.decision})"
        cells, captions = [], []
        if stored.gallery_crop is not None:
            cells.append(_image(stored.gallery_crop, 76.0, nearest=False))
            captions.append("gallery portrait (crop)")
        cells.append(_image(cand.best_probe_hypothesis.image, 76.0, nearest=False,
                            embed_width_pt=HYPOTHESIS_SHOWN_PT))
        captions.append(f"best probe hypothesis x{cand.best_probe_hypothesis.scale}\n{ENHANCED_LABEL}")
        for hyp in cand.best_gallery_hypotheses[:4]:
            cells.append(_image(hyp.image, 76.0))
            captions.append(f"degraded gallery x{hyp.scale}: {describe_path(hyp.path)} ({hyp.score:.3f})")
        per_scale = ", ".join(f"x{k}: {v:.4f}" for k, v in sorted(cand.per_scale_scores.items()))
        members = "; ".join(f"{name} {v:.4f}" for name, v in cand.member_scores.items())
        out = [_p(header, s.h2),
               _p(f"Gallery image {cand.image_path} (SHA-256 {cand.gallery_sha256}). Per-scale scores: {per_scale}."
                  + (f" Each network's own score (the fused score combines them): {members}." if members else ""),
                  s.small),
               _table([cells, [_p(c, s.warning if ENHANCED_LABEL in c else s.caption) for c in captions]],
                      [min(86.0, self.width / len(cells))] * len(cells), header=False, zebra=False)]
        if cand.similarity:
            sigmas = {k: [h.sigma for h in v] for k, v in search.probe_hypotheses.items()}
            png = _heatmaps(cand.similarity, sigmas)
            with PILImage.open(io.BytesIO(png)) as im:
                aspect = im.height / im.width
            shown_width = min(self.width, 125.0 * len(cand.similarity) + 40)
            out += [Spacer(1, 3), Image(io.BytesIO(png), width=shown_width, height=shown_width * aspect),
                    _p("Similarity of every probe hypothesis (rows) with every degraded gallery hypothesis "
                       "(columns), per scale.", s.small)]
        return out

    def _open_set(self, search: StoredSearch) -> OpenSetCue:
        """The search's open-set cue, from its stored ranking and the shipped open-set calibration matching it."""
        if search.id not in self._open_set_cues:
            self._open_set_cues[search.id] = open_set_cue(search.to_search_result())
        return self._open_set_cues[search.id]

    def _open_set_paragraphs(self, search: StoredSearch) -> list[Any]:
        s = self.s
        cue = self._open_set(search)
        out = [_p(f"Open set: {cue.text}", s.body)]
        cal = cue.calibration
        if cal is not None and cue.value is not None:
            out.append(_p((
                f"Statistic {cue.statistic} = {cue.value:.4g} over the {cue.num_gallery_identities} ranked "
                f"identities; open-set calibration for the {cal.band_px} px band (held-out Cllr {cal.cllr:.3f}, "
                f"bounded to log10 LR in [{cal.lower_log10_lr:.2f}, {cal.upper_log10_lr:.2f}]): {cal.conditions} "
                f"{OPEN_SET_CAVEAT} Worked out for this report from the stored ranking."), s.small))
        return out

    def _method(self) -> list[Any]:
        from reportlab.platypus import CondPageBreak

        s = self.s
        out = [CondPageBreak(150), self._h1("Method"), _p(METHOD_TEXT, s.body),
               _p(f"Reference: {PAPER_CITATION}", s.body),
               _p("Likelihood ratios (where given) follow the ENFSI Guideline for Evaluative Reporting in Forensic "
                  "Science (2015): LR = p(score | same person) / p(score | different persons), with the ENFSI verbal "
                  "equivalents. Calibration: logistic regression with empirical lower and upper bounds (ELUB), "
                  "fitted with the lir package of the Netherlands Forensic Institute.", s.body),
               self._h1("Limitations")]
        out += [_p(f"{k}. {text}", s.body) for k, text in enumerate(LIMITATIONS, start=1)]
        return out

    def _log(self) -> list[Any]:
        from reportlab.platypus import CondPageBreak

        s, w = self.s, self.width
        out: list[Any] = [CondPageBreak(150), self._h1("Processing log (audit trail)"),
                          _p(f"{len(self.entries)} entries up to report generation; the export of this report is "
                             "logged as the next entry. Details are abridged here; the case file holds them in full. "
                             "Each entry hash covers the entry and the previous entry's hash.", s.small)]
        rows = [[_p(h, s.cell_bold) for h in ("Seq", "UTC", "Actor", "Action", "Details", "Entry hash")]]
        for e in self.entries:
            rows.append([_p(str(e.seq), s.cell), _p(e.utc.replace("T", " "), s.small), _p(e.actor, s.small),
                         _p(e.action, s.cell), _p(_entry_summary(e), s.mono), _p(e.entry_hash[:16] + "...", s.mono)])
        out.append(_table(rows, [26, 62, 42, 44, w - 244, 70]))
        return out

    def _signoff(self) -> list[Any]:
        from reportlab.platypus import CondPageBreak, Spacer

        s, w = self.s, self.width
        blank = _p(" ", s.cell)
        conclusion = _table([[_p("Examiner's conclusion (to be completed by the examiner; state the propositions "
                                 "considered and whether any candidate is proposed as an investigative lead):",
                                 s.cell_bold)], [Spacer(1, 120)]], [w], header=False, zebra=False)
        fields = _table([[_p(h, s.cell_bold) for h in ("", "Name", "Signature", "Date")],
                         [_p("Examiner", s.cell_bold), blank, blank, blank],
                         [_p("Independent reviewer", s.cell_bold), blank, blank, blank]],
                        [100, (w - 100) * 0.4, (w - 100) * 0.35, (w - 100) * 0.25], header=True, zebra=False)
        fields.setStyle([("ROWBACKGROUNDS", (0, 1), (-1, -1), [None]), ("TOPPADDING", (0, 1), (-1, -1), 14),
                         ("BOTTOMPADDING", (0, 1), (-1, -1), 14)])
        return [CondPageBreak(260), self._h1("Conclusion and sign-off"), conclusion, Spacer(1, 8), fields]


def write_case_report(case_path: str | Path, out: str | Path, search_ids: Sequence[int] | None = None,
                      top: int = 5, check_galleries: bool = True, examiner: str | None = None,
                      force: bool = False) -> ReportOutcome:
    """Verify the case, render its report to ``out`` (PDF) and log the export. Returns pages, hash, verification.

    ``search_ids``: the search to report for each probe (:func:`choose_reported_probes`; default every probe
    with the search the examiner chose for it, the latest by default; the other searches of a reported probe are
    listed in an annex); ``top``: candidates shown with images and heatmaps per probe;
    ``examiner``: who signs this report (default: the case's examiner), recorded in the export's audit entry;
    ``force``: replace an existing file at ``out``. Evidence, gallery images, the case file (and its SQLite
    companions), other case files and folders are never replaced (:func:`check_output_path`).
    """
    if top < 0:
        raise CaseStoreError(f"top must be >= 0, got {top}")
    with open_case(case_path, examiner) as store:
        target = check_output_path(out, store=store, force=force, what="report")
        verification = verify_store(store, check_galleries=check_galleries)
        store.log_action("verify", verify_record(verification, purpose="report"))
        probes = choose_reported_probes(case_history(store), search_ids)
        ids = [p.chosen.search.id for p in probes]
        info = store.info()
        if examiner:
            info = dataclasses.replace(info, examiner=examiner)
        builder = _ReportBuilder(info, store.evidence_items(), probes, store.audit_entries(), verification,
                                 datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), top)
        with atomic_output(target) as temp:
            num_pages = builder.build(temp)
            digest = hashlib.sha256(temp.read_bytes()).hexdigest()
        store.log_action("export", {"kind": "pdf_report", "path": str(target), "sha256": digest,
                                    "pages": num_pages, "searches": ids, "verification_ok": verification.ok,
                                    "examiner": info.examiner})
    log.info("wrote report %s (%d pages)", target, num_pages)
    return ReportOutcome(target, num_pages, digest, verification)
