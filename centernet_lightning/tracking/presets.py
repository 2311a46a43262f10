"""Tracker presets and settings files: ``--tracker NAME`` or ``--tracker file.yaml`` plus ``KEY=VALUE``.

A preset is a small YAML file of :class:`~centernet_lightning.tracking.Tracker` keyword settings
shipped in ``centernet_lightning/configs/trackers/``: ``default`` (``Tracker()`` as it is),
``bytetrack``, ``fairmot`` (the published associations), ``botsort`` (camera-motion compensation,
for moving cameras) and ``ocsort`` (recovery of lost tracks, motion only). Presets choose the
association; score thresholds stay those of the model (or the tracker's defaults) unless set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from centernet_lightning.checks import check_known_keys, parse_setting, setting_types

__all__ = ["TRACKER_PRESETS", "parse_tracker_overrides", "tracker_settings"]

TRACKER_PRESETS = ("default", "bytetrack", "fairmot", "botsort", "ocsort")


def _preset_path(name: str) -> Path:
    return Path(str(files("centernet_lightning") / "configs" / "trackers" / f"{name}.yaml"))


def _read_settings_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a tracker settings file holds KEY: VALUE lines, got a {type(loaded).__name__}")
    return loaded


def parse_tracker_overrides(pairs: Sequence[str], source: str = "tracker_settings(overrides=...)") -> dict[str, Any]:
    """``KEY=VALUE`` texts as settings, each value read as the type the Tracker's parameter takes;
    ValueError naming the pair, an unknown key (with the valid ones) or a value of the wrong type."""
    from centernet_lightning.tracking.tracker import Tracker

    types = setting_types(Tracker)
    settings = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"{source} takes KEY=VALUE pairs, got {pair!r}")
        check_known_keys(source, [key], types)
        settings[key] = parse_setting(f"{source} {key}", value, types[key])
    return settings


def tracker_settings(
    preset: str | os.PathLike | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> dict[str, Any]:
    """The keyword settings of a preset or a YAML file, updated by ``overrides``.

    Args:
        preset: a name of :data:`TRACKER_PRESETS`, a path to a YAML file of settings, or None (none).
        overrides: ``KEY=VALUE`` texts (typed like the Tracker's parameters) or a mapping.

    Raises:
        ValueError: an unknown preset (listing them), a file that is not a mapping of settings, an
            unknown key (listing the valid ones), a value of the wrong type; each naming the file.
        FileNotFoundError: a path that does not exist.
    """
    from centernet_lightning.tracking.tracker import Tracker

    settings: dict[str, Any] = {}
    if preset is not None:
        text = str(preset)
        if text in TRACKER_PRESETS:
            path = _preset_path(text)
        elif text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
            path = Path(text)
            if not path.is_file():
                raise FileNotFoundError(f"tracker settings file {path} does not exist")
        else:
            raise ValueError(f"unknown tracker preset {text!r}; presets: {', '.join(TRACKER_PRESETS)}, or a .yaml file")
        settings = _read_settings_file(path)
        check_known_keys(str(path), list(settings), setting_types(Tracker))
        try:  # a value of the wrong type or range, named with its file now rather than at use
            Tracker(**settings)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of KEY=VALUE texts or a mapping, got the string {overrides!r}")
    if isinstance(overrides, Mapping):
        check_known_keys("tracker settings", list(overrides), setting_types(Tracker))
        settings.update(overrides)
    else:
        settings.update(parse_tracker_overrides(overrides))
    return settings
