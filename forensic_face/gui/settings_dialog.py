"""The Settings dialog: edits an EngineConfig, validated before it is accepted."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from forensic_face.engine.config import BUDGETS, VIDEO_FUSIONS, EngineConfig
from forensic_face.engine.errors import ConfigError
from forensic_face.settings import parse_scales

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def available_recognizers() -> list[str]:
    """Registered recognizer names and the measured ensembles of them, or the default alone while the registry
    is not importable. Other ensembles can be typed (names joined by '+')."""
    try:
        from forensic_face.engine.recognizers import available_recognizers as names
        from forensic_face.engine.recognizers.ensemble import MEASURED_ENSEMBLES
    except ImportError:
        return [EngineConfig().recognizer]
    try:
        return list(names()) + list(MEASURED_ENSEMBLES)
    except Exception:  # noqa: BLE001 - a broken optional backend must not stop the dialog from opening
        log.exception("listing recognizers failed")
        return [EngineConfig().recognizer]


def available_fusions() -> list[str]:
    """The engine's fusions (the paper's Figure 4 / Table 3), the engine's default first; an alias saved in the
    settings is still shown, as the combo adds the current value."""
    from forensic_face.engine.fusion import canonical_fusions

    default = EngineConfig().fusion
    return [default] + [name for name in canonical_fusions() if name != default]


def available_upsamplers() -> list[str]:
    try:
        from forensic_face.engine.upsamplers import available_upsamplers as names

        return list(names())
    except Exception:  # noqa: BLE001
        log.exception("listing upsamplers failed")
        return [EngineConfig().upsampler]


def _combo(items: list[str] | tuple[str, ...], current: str, editable: bool = False) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(editable)
    values = list(items)
    if current not in values:
        values.append(current)
    combo.addItems(values)
    combo.setCurrentText(current)
    return combo


class SettingsDialog(QDialog):
    """Device, recognizer and model file, upsampler, budget, scales, fusion, blur hypotheses, batch, top-N."""

    def __init__(self, config: EngineConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._config = config
        self._result: EngineConfig | None = None

        self.device = _combo(DEVICES, config.device)
        self.recognizer = _combo(available_recognizers(), config.recognizer, editable=True)
        self.model_path = QLineEdit(config.recognizer_model_path or "")
        self.model_path.setPlaceholderText("shipped model (verified SHA-256)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_path, 1)
        model_row.addWidget(browse)
        self.flip_test = QCheckBox("Also read each face mirrored (flip test; twice the recognizer time)")
        self.flip_test.setObjectName("flipTestCheck")
        self.flip_test.setChecked(config.flip_test)
        self.upsampler = _combo(available_upsamplers(), config.upsampler)
        self.budget = _combo(BUDGETS, config.budget)
        self.scales = QLineEdit(", ".join(str(s) for s in config.scales))
        self.scales.setToolTip("Magnification factors of the probe, e.g. 2, 4, 8")
        self.fusion = _combo(available_fusions(), config.fusion)
        self.blur = QSpinBox()
        self.blur.setRange(1, 64)
        self.blur.setValue(config.num_blur_hypotheses)
        self.blur.setToolTip("Probe hypotheses per scale: Gaussian pre-blur sigma from 0 to the maximum")
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(config.batch_size)
        self.top_n = QSpinBox()
        self.top_n.setRange(1, 1000)
        self.top_n.setValue(config.top_k)
        self.video_frames = QSpinBox()
        self.video_frames.setRange(1, 50)
        self.video_frames.setValue(config.video_frames)
        self.video_frames.setToolTip("A video track is searched with this many of its best frames (by face quality)")
        self.video_fusion = _combo(VIDEO_FUSIONS, config.video_fusion)
        self.video_fusion.setToolTip("score-mean: each frame searched, scores averaged; template-mean: the frames' "
                                     "templates averaged, searched once (both weighted by face quality)")

        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Recognizer", self.recognizer)
        form.addRow("Recognizer model file", model_row)
        form.addRow("Flip test", self.flip_test)
        form.addRow("Upsampler", self.upsampler)
        form.addRow("Gallery degradation budget", self.budget)
        form.addRow("Scales", self.scales)
        form.addRow("Fusion", self.fusion)
        form.addRow("Blur hypotheses per scale", self.blur)
        form.addRow("Batch size", self.batch)
        form.addRow("Candidates shown (top-N)", self.top_n)
        form.addRow("Video: frames fused per track", self.video_frames)
        form.addRow("Video: frame fusion", self.video_fusion)

        self.error = QLabel()
        self.error.setObjectName("errorLabel")
        self.error.setWordWrap(True)
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self._restore_defaults)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Recognizer model file", "",
                                              "Models (*.onnx *.pt *.pth *.safetensors *.dat);;All files (*)")
        if path:
            self.model_path.setText(path)

    def _restore_defaults(self) -> None:
        d = EngineConfig()
        self.device.setCurrentText(d.device)
        self.recognizer.setCurrentText(d.recognizer)
        self.model_path.setText("")
        self.flip_test.setChecked(d.flip_test)
        self.upsampler.setCurrentText(d.upsampler)
        self.budget.setCurrentText(d.budget)
        self.scales.setText(", ".join(str(s) for s in d.scales))
        self.fusion.setCurrentText(d.fusion)
        self.blur.setValue(d.num_blur_hypotheses)
        self.batch.setValue(d.batch_size)
        self.top_n.setValue(d.top_k)
        self.video_frames.setValue(d.video_frames)
        self.video_fusion.setCurrentText(d.video_fusion)

    def build_config(self) -> EngineConfig:
        """The edited config; raises ConfigError with a readable message for invalid input."""
        model = self.model_path.text().strip()
        if model and not Path(model).is_file():
            raise ConfigError(f"the recognizer model file {model} does not exist")
        from forensic_face.engine.recognizers.registry import recognizer_members

        recognizer_members(self.recognizer.currentText().strip())  # a typed ensemble names registered networks
        return self._config.replace(
            device=self.device.currentText(),
            recognizer=self.recognizer.currentText().strip(),
            recognizer_model_path=model or None,
            flip_test=self.flip_test.isChecked(),
            upsampler=self.upsampler.currentText().strip(),
            budget=self.budget.currentText(),
            scales=parse_scales(self.scales.text()),
            fusion=self.fusion.currentText().strip(),
            num_blur_hypotheses=self.blur.value(),
            batch_size=self.batch.value(),
            top_k=self.top_n.value(),
            video_frames=self.video_frames.value(),
            video_fusion=self.video_fusion.currentText(),
        )

    def accept(self) -> None:
        try:
            self._result = self.build_config()
        except ConfigError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        super().accept()

    def config(self) -> EngineConfig:
        """The accepted config (the original one if the dialog was cancelled)."""
        return self._result or self._config
