"""Model registry and safe weight loading.

Every detector lives in its own module ``models/<architecture>.py`` and exposes a class ``Model`` built from the
``model_config`` dict of a JSON config. ``build_model`` picks the module by ``model_config["architecture"]``.
Every model maps a raw waveform batch ``(B, T)`` to ``(embedding, logits (B, 2))``; the score is ``logits[:, 1]``
(bona fide = 1, higher = more bona fide).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from antispoof.errors import first_line

MODELS_DIR = Path(__file__).resolve().parent
WEIGHTS_REGISTRY = MODELS_DIR / "weights_registry.json"

# architecture name -> module name under models/
ARCHITECTURES = {
    "AASIST": "AASIST",
    "ACRNN": "ACRNN",
    "AASIST_Concat": "AASIST_Concat",
    "AASIST_FiLM": "AASIST_FiLM",
    "AASIST_GFiLM": "AASIST_GFiLM",
    "AMSDF": "AMSDF",
    "AASIST_WAV2VEC": "AASIST_WAV2VEC",
}
# spellings used by the upstream configs (akzykova/aasist_ser)
ALIASES = {"AASIST_FILM": "AASIST_FiLM", "AASIST_GFILM": "AASIST_GFiLM", "SER": "ACRNN"}


class ConfigError(ValueError):
    """A config lacks a key or names something unknown."""


class WeightLoadError(RuntimeError):
    """A weight file is missing, unreadable or does not fit the model."""


def canonical_architecture(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConfigError(f"unknown architecture {name!r} in model_config; known: {known}")
    return name


def build_model(model_config: Mapping) -> nn.Module:
    """Build ``models/<architecture>.py:Model(model_config)``."""
    if "architecture" not in model_config:
        raise ConfigError("model_config has no 'architecture' key")
    name = canonical_architecture(model_config["architecture"])
    module = importlib.import_module(f"models.{ARCHITECTURES[name]}")
    return module.Model(dict(model_config))


def download_hint(path: str | Path) -> str:
    """The download_weights.py command that fetches a weight file with this name, if the registry knows it."""
    name = Path(path).name
    try:
        registry = json.loads(WEIGHTS_REGISTRY.read_text())
    except (OSError, ValueError):
        registry = {}
    for key, entry in registry.items():
        if key.startswith("_") or not isinstance(entry, dict):
            continue
        if entry.get("filename") == name:
            return f"fetch it with: python download_weights.py --model {key}"
    return "check the path in the config (or pass --eval_model_weights)"


def load_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``), with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightLoadError(f"{path}: weight file not found; {download_hint(path)}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or pickles arbitrary objects
        raise WeightLoadError(f"{path}: cannot be loaded as a safe state dict ({first_line(exc)})") from exc
    # checkpoints written by main.py wrap the weights with training state
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightLoadError(f"{path}: does not hold a state dict of tensors")
    return state


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that carries it (e.g. DataParallel's ``module.``)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def check_state_dict_fits(model: nn.Module, state: Mapping[str, torch.Tensor], label: str) -> None:
    """Raise one clear error listing the missing, unexpected and mis-shaped keys of ``state`` for ``model``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or wrong_shape:

        def show(keys):
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") or "none"

        raise WeightLoadError(
            f"{label}: weights do not fit {type(model).__module__}.{type(model).__name__}: "
            f"missing keys: {show(missing)}; unexpected keys: {show(unexpected)}; shape mismatches: "
            f"{show(wrong_shape)}"
        )


def load_weights(
    model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], what: str = ""
) -> nn.Module:
    """Load weights strictly; a mismatch is an error listing the missing and unexpected keys."""
    label = what or (str(source) if not isinstance(source, Mapping) else type(model).__name__)
    state = load_state_dict(source) if not isinstance(source, Mapping) else dict(source)
    state = strip_prefix(state, "module.")
    convert = getattr(model, "convert_state_dict", None)
    if callable(
        convert
    ):  # a model that knows its authors' checkpoint layout maps it (e.g. fairseq XLS-R keys)
        state = convert(state)
    check_state_dict_fits(model, state, label)
    model.load_state_dict(state, strict=True)
    return model


def freeze(module: nn.Module) -> nn.Module:
    """Freeze a submodule: no gradients, and eval mode that survives ``model.train()`` (see FrozenModule)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module._frozen = True  # read by keep_frozen_in_eval
    return module


def keep_frozen_in_eval(model: nn.Module) -> None:
    """Put every frozen submodule back in eval mode; call after ``model.train()``.

    Models with frozen parts override ``train`` to call this, so BatchNorm statistics never drift and dropout
    stays off in the frozen parts however the caller toggles modes.
    """
    for module in model.modules():
        if getattr(module, "_frozen", False):
            module.eval()


def validate_model_config(model_config: Mapping) -> dict:
    """A checked copy of ``model_config`` (its architecture must be registered)."""
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"model_config must be a JSON object, got {model_config!r}")
    if "architecture" not in model_config:
        raise ConfigError("model_config has no 'architecture' key")
    canonical_architecture(model_config["architecture"])
    return dict(model_config)
