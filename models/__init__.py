"""Model registry, model options, safe weight loading and frozen parts.

Every detector lives in its own module ``models/<architecture>.py`` and exposes a class ``Model`` built from the
``model_config`` dict of a JSON config, and ``OPTIONS``, the keys that dict may hold (``models/options.py``).
``build_model`` picks the module by ``model_config["architecture"]``; ``validate_model_config`` checks a
``model_config`` against its architecture's options without building the model.
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
from models.options import ConfigError, read_options

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


class WeightLoadError(RuntimeError):
    """A weight file is missing, unreadable or does not fit the model."""


def canonical_architecture(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConfigError(f"unknown architecture {name!r} in model_config; known: {known}")
    return name


def _architecture_module(model_config: Mapping):
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"model_config must be a JSON object, got {type(model_config).__name__}")
    if "architecture" not in model_config:
        raise ConfigError("model_config has no 'architecture' key")
    name = canonical_architecture(model_config["architecture"])
    return name, importlib.import_module(f"models.{ARCHITECTURES[name]}")


def validate_model_config(model_config: Mapping) -> dict:
    """The canonical copy of ``model_config`` (architecture's canonical name, values of their declared kinds,
    defaults filled in), read as ``build_model`` reads it but without building anything; a ConfigError (one
    line naming the key) when a key is unknown, missing or of the wrong kind."""
    name, module = _architecture_module(model_config)
    return {**read_options(model_config, module.OPTIONS, f"{name} model_config"), "architecture": name}


def build_model(model_config: Mapping) -> nn.Module:
    """Build ``models/<architecture>.py:Model(model_config)``; the model reads its options with its ``OPTIONS``."""
    _, module = _architecture_module(model_config)
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


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", what: str = "weight file"):
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled code.

    A missing or unreadable file is a WeightLoadError of one line naming it; the exception torch raised is its
    ``__cause__`` (``models.wav2vec2`` reads it to tell a pickled config from a corrupt file).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightLoadError(f"{path}: {what} not found; {download_hint(path)}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or pickles arbitrary objects
        raise WeightLoadError(f"{path}: cannot be loaded as a safe state dict ({first_line(exc)})") from exc


def load_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict safely (``safe_load``), with one-line errors naming the file."""
    state = safe_load(path, map_location)
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
    # a model that knows its authors' checkpoint layout maps it (e.g. fairseq XLS-R keys)
    convert = getattr(model, "convert_state_dict", None)
    if callable(convert):
        state = convert(state)
    check_state_dict_fits(model, state, label)
    model.load_state_dict(state, strict=True)
    return model


class Frozen:
    """What ``freeze`` adds to a module's class: ``train()`` leaves it in eval mode.

    So a frozen part stays in eval mode however its model's mode is toggled (``model.train()`` reaches it as
    ``train(True)``): its BatchNorm statistics never drift and its dropout stays off. No model overrides
    ``train`` for this, and the state dict keys are unchanged (the module is not wrapped).
    """

    def train(self, mode: bool = True):
        return super().train(False)

    def __reduce_ex__(self, protocol):
        # the class is made at run time, so pickle cannot find it by name: rebuild it from the unfrozen class
        return (_frozen_instance, (type(self).__bases__[1],), self.__dict__)


_FROZEN_CLASSES: dict[type, type] = {}


def _frozen_class(cls: type) -> type:
    if cls not in _FROZEN_CLASSES:
        name = f"Frozen{cls.__name__}"
        _FROZEN_CLASSES[cls] = type(name, (Frozen, cls), {"__module__": cls.__module__, "__qualname__": name})
    return _FROZEN_CLASSES[cls]


def _frozen_instance(cls: type) -> nn.Module:
    return object.__new__(_frozen_class(cls))


def freeze(module: nn.Module) -> nn.Module:
    """Freeze a submodule in place: no gradients, and eval mode that survives ``train()`` (see ``Frozen``)."""
    for p in module.parameters():
        p.requires_grad_(False)
    if not isinstance(module, Frozen):
        module.__class__ = _frozen_class(type(module))
    return module.eval()
