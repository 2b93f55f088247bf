"""The settings dialog: every user setting shown, read back, persisted; invalid input refused."""

from __future__ import annotations

from forensic_face.engine.config import EngineConfig
from forensic_face.gui.settings_dialog import SettingsDialog
from forensic_face.settings import (
    load_settings,
    save_settings,
    settings_path,
)


def test_settings_dialog_builds_and_persists_config(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    dialog.editors["device"].show("cpu")
    dialog.editors["budget"].show("fast")
    dialog.editors["scales"].widget.setText("4, 2")
    dialog.editors["top_k"].show(7)
    dialog.editors["num_blur_hypotheses"].show(4)
    dialog.editors["flip_test"].show(not EngineConfig().flip_test)
    dialog.accept()
    config = dialog.config()
    assert (config.device, config.budget, config.scales, config.top_k, config.num_blur_hypotheses) == \
        ("cpu", "fast", (2, 4), 7, 4)
    assert config.flip_test is not EngineConfig().flip_test
    path = save_settings(config)
    assert path == settings_path() and load_settings() == config


def test_settings_dialog_shows_every_user_setting_and_restores_defaults(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.config import USER_SETTINGS

    edited = EngineConfig(device="cpu", recognizer="dlib-resnet", flip_test=False, upsampler="bicubic", budget="fast",
                          scales=(2,), fusion="S_add,S_add", num_blur_hypotheses=3, batch_size=5, top_k=7,
                          video_frames=2, video_fusion="template-mean")
    dialog = SettingsDialog(edited)
    qtbot.addWidget(dialog)
    assert list(dialog.editors) == [s.name for s in USER_SETTINGS if s.label is not None]
    assert dialog.build_config() == edited  # each editor shows its setting's value and reads it back
    dialog._restore_defaults()
    assert dialog.build_config() == EngineConfig()


def test_settings_dialog_offers_every_fusion_once_default_first(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from forensic_face.engine.fusion import FusionSpec, canonical_fusions

    dialog = SettingsDialog(EngineConfig(fusion="S_add"))  # an alias saved by hand stays selectable
    qtbot.addWidget(dialog)
    fusion = dialog.editors["fusion"].widget
    offered = [fusion.itemText(i) for i in range(fusion.count())]
    assert offered[0] == EngineConfig().fusion
    assert sorted(offered[:-1]) == sorted(canonical_fusions()) and offered[-1] == "S_add"
    assert len({FusionSpec.parse(name) for name in offered[:-1]}) == len(offered) - 1
    assert fusion.currentText() == "S_add"


def test_settings_dialog_offers_the_measured_ensemble_and_checks_typed_ones(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    recognizer = dialog.editors["recognizer"].widget
    offered = [recognizer.itemText(i) for i in range(recognizer.count())]
    assert "dlib-resnet-lr+faceres" in offered and "faceres" in offered
    recognizer.setCurrentText("dlib-resnet-lr+mobileface")
    dialog.accept()
    assert dialog.config().recognizer == "dlib-resnet-lr+mobileface"
    dialog = SettingsDialog(EngineConfig())
    qtbot.addWidget(dialog)
    dialog.editors["recognizer"].show("dlib-resnet-lr+nonet")
    dialog.accept()
    assert dialog.result() != int(SettingsDialog.DialogCode.Accepted) and "nonet" in dialog.error.text()


def test_settings_dialog_refuses_invalid_input(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    original = EngineConfig()
    dialog = SettingsDialog(original)
    qtbot.addWidget(dialog)
    dialog.editors["scales"].widget.setText("two")
    dialog.accept()
    assert dialog.result() != int(SettingsDialog.DialogCode.Accepted)
    assert "scales" in dialog.error.text()
    assert dialog.config() == original
