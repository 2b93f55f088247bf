"""The Settings dialog: edits an EngineConfig, validated before it is accepted. Its rows are generated from
:data:`forensic_face.engine.config.USER_SETTINGS`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

from forensic_face.engine import USER_SETTINGS, ConfigError, EngineConfig, UserSetting, parse_scales

log = logging.getLogger(__name__)


def available_recognizers() -> list[str]:
    """Registered recognizer names and the measured ensembles of them, or the default alone while the registry
    is not importable. Other ensembles can be typed (names joined by '+')."""
    try:
        from forensic_face.engine.recognizers import MEASURED_ENSEMBLES, available_recognizers as names
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
    from forensic_face.engine import canonical_fusions

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


#: Where the registered names a ``name`` setting offers come from, and whether other values can be typed (an
#: ensemble of recognizers: names joined by '+').
NAME_LISTS: dict[str, tuple[Callable[[], list[str]], bool]] = {
    "recognizer": (available_recognizers, True),
    "upsampler": (available_upsamplers, False),
    "fusion": (available_fusions, False),
}


class SettingEditor:
    """The widget of one :class:`UserSetting` in the dialog: shows a value and reads the edited one back, the way
    its ``entry`` says. ``row`` is what the form shows (the widget, or the widget with a Browse button)."""

    def __init__(self, setting: UserSetting, value: Any, parent: QWidget) -> None:
        self.setting = setting
        self.widget: QWidget
        self.row: QWidget | QHBoxLayout
        entry = setting.entry
        if entry in ("choice", "name"):
            items, editable = ((setting.choices, False) if entry == "choice" else
                               (NAME_LISTS[setting.name][0](), NAME_LISTS[setting.name][1]))
            self.widget = _combo(items, value, editable=editable)
        elif entry == "count":
            spin = QSpinBox()
            spin.setRange(1, setting.most)
            self.widget = spin
        elif entry == "on-off":
            self.widget = QCheckBox(setting.hint)
        elif entry in ("scales", "file"):
            line = QLineEdit()
            line.setPlaceholderText(setting.hint)
            self.widget = line
        else:
            raise TypeError(f"the Settings dialog cannot show a {entry!r} setting ({setting.name})")
        self.widget.setObjectName(setting.name)
        self.widget.setToolTip(setting.tooltip)
        self.row = self.widget
        if entry == "file":
            browse = QPushButton("Browse…")
            browse.clicked.connect(lambda: self._browse(parent))
            self.row = QHBoxLayout()
            self.row.addWidget(self.widget, 1)
            self.row.addWidget(browse)
        self.show(value)

    def show(self, value: Any) -> None:
        widget = self.widget
        if isinstance(widget, QComboBox):
            widget.setCurrentText(value)
        elif isinstance(widget, QSpinBox):
            widget.setValue(value)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(value)
        elif isinstance(widget, QLineEdit):
            widget.setText(", ".join(str(s) for s in value) if self.setting.entry == "scales" else value or "")

    def value(self) -> Any:
        """The edited value; raises ConfigError with a readable message for invalid input."""
        widget = self.widget
        if isinstance(widget, QComboBox):
            return widget.currentText().strip()
        if isinstance(widget, QSpinBox):
            return widget.value()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if not isinstance(widget, QLineEdit):
            raise TypeError(f"no value of a {type(widget).__name__}")  # the constructor makes no other widget
        if self.setting.entry == "scales":
            return parse_scales(widget.text())
        path = widget.text().strip()
        if path and not Path(path).is_file():
            raise ConfigError(f"the {(self.setting.label or self.setting.name).lower()} {path} does not exist")
        return path or None

    def _browse(self, parent: QWidget) -> None:
        path, _ = QFileDialog.getOpenFileName(parent, self.setting.label or self.setting.name, "",
                                              "Models (*.onnx *.pt *.pth *.safetensors *.dat);;All files (*)")
        if path:
            self.show(path)


class SettingsDialog(QDialog):
    """The :data:`USER_SETTINGS` that have a dialog row, one editor each, in the table's order."""

    def __init__(self, config: EngineConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._config = config
        self._result: EngineConfig | None = None

        #: field name -> its editor, in the order shown
        self.editors: dict[str, SettingEditor] = {}
        form = QFormLayout()
        for setting in USER_SETTINGS:
            if setting.label is None:
                continue
            editor = SettingEditor(setting, getattr(config, setting.name), self)
            self.editors[setting.name] = editor
            form.addRow(setting.label, editor.row)

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

    def _restore_defaults(self) -> None:
        defaults = EngineConfig()
        for name, editor in self.editors.items():
            editor.show(getattr(defaults, name))

    def build_config(self) -> EngineConfig:
        """The edited config; raises ConfigError with a readable message for invalid input."""
        changes = {name: editor.value() for name, editor in self.editors.items()}
        from forensic_face.engine.recognizers import recognizer_members

        recognizer_members(changes["recognizer"])  # a typed ensemble names registered networks
        return self._config.replace(**changes)

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
