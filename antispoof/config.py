"""Experiment configs: JSON files in ``config/``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json_config(path: str | os.PathLike) -> dict:
    """The JSON object in ``path``; a missing or malformed file is a one-line ``SystemExit``."""
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"error: {path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: {path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise SystemExit(f"error: {path}: a config is a JSON object, not {type(config).__name__}")
    return config


def read_config(path: str | os.PathLike) -> dict:
    """An experiment config: a JSON object with a ``model_config``."""
    config = read_json_config(path)
    if "model_config" not in config:
        raise SystemExit(f"error: {path}: config has no 'model_config'")
    return config
