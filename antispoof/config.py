"""Experiment configs: a JSON file in ``config/`` read once into a validated :class:`ExperimentConfig`.

Every key is declared here with its type and default, so a misspelt key (``"batch_sise"``) or a wrong type
(``"batch_size": "eight"``) stops the run with one line naming the key before any data is read. Booleans may be
written as JSON booleans or as the strings "true"/"false" (the upstream configs do); numbers may be written as
numeric strings. Keys starting with ``_`` are comments. ``model_config`` is checked by the model registry.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DEFAULT_ASV_SCORES = "ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"
# How a file is scored (``antispoof.scoring``): its "first" nb_samp samples (the published protocol), every
# nb_samp-sample "windows" at scoring_hop with the mean logit, or the "full" file (models that take any length).
ScoringMode = Literal["first", "windows", "full"]
SCORING_MODES: tuple[str, ...] = typing.get_args(ScoringMode)


class ConfigValueError(ValueError):
    """A config key is unknown, missing, of the wrong type or out of range (one line naming the key)."""


@dataclass
class OptimConfig:
    """Adam with AASIST's per-step cosine annealing from ``base_lr`` to ``lr_min`` (or a constant rate)."""

    base_lr: float
    lr_min: float = 0.0
    optimizer: Literal["adam"] = "adam"
    amsgrad: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: Literal["cosine", "none", "constant"] = "cosine"


@dataclass
class AveragingConfig:
    """Checkpoint averaging after training (see ``antispoof.training.averaging.Averager``): SWA over the last
    ``swa_epochs`` epochs, over the epochs that improved on dev ("improved", clovaai/aasist's recipe), or the
    ``top_k`` best; ``use`` "if_better" keeps the average only when dev prefers it, "always" keeps it."""

    method: Literal["swa", "improved", "top_k"]
    swa_epochs: int = 0
    top_k: int = 5
    start_below: float | None = None
    use: Literal["if_better", "always"] = "if_better"


@dataclass
class ExperimentConfig:
    """One experiment: data, model, optimisation and run settings. Defaults live here and nowhere else."""

    model_config: dict
    database_path: str | None = None
    asv_score_path: str = DEFAULT_ASV_SCORES
    model_path: str | None = None
    # weights to start training from (fine-tuning), loaded strictly before the first epoch
    init_weights: str | None = None
    emo_dataset: str | None = None
    track: str = "LA"
    batch_size: int = 24
    eval_batch_size: int | None = None
    num_epochs: int = 100
    seed: int = 1234
    num_workers: int = 0
    cudnn_deterministic_toggle: bool = True
    cudnn_benchmark_toggle: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    find_unused_parameters: bool = True
    freq_aug: bool = False
    # "random": a random nb_samp crop per epoch (AASIST); "first": the first nb_samp samples (SSL_Anti-spoofing, AMSDF)
    train_crop: Literal["random", "first"] = "random"
    # RawBoost on the crop ("crop") or on the whole utterance before cropping ("utterance", SSL_Anti-spoofing)
    augment_on: Literal["crop", "utterance"] = "crop"
    max_grad_norm: float | None = None
    early_stopping_patience: int | None = None
    # which epoch the selection keeps when two dev values tie: clovaai/aasist keeps the later one
    selection_ties: Literal["later", "earlier"] = "later"
    averaging: AveragingConfig | None = None
    rawboost: dict | None = None
    optim_config: OptimConfig | None = None
    dses_bootstrap: int = 1000
    # during training, DSES is scored after every N-th epoch for its EER history (0: only once, after training);
    # DSES can be as large as LA dev, so N > 1 saves that much scoring per skipped epoch
    dses_every_epochs: int = 1
    # main.py --eval on named evaluation sets, in this order: {"LA21": "/data/ASVspoof2021", ...} (see README)
    eval_sets: dict[str, str] | None = None
    # trials per score shard of an eval set: a killed scoring resumes at the first shard not yet written
    eval_shard_size: int = 4096
    ser_val_speakers: list[str] | None = None
    demo: dict | None = None
    # dev, eval, DSES and inference.py score files this way (training crops are unaffected); see SCORING_MODES
    scoring: ScoringMode = "first"
    # samples between window starts for "windows"; default nb_samp (no overlap: each sample is scored once,
    # and the cost is the audio's length). Must be <= nb_samp so no sample is skipped.
    scoring_hop: int | None = None
    # on a CPU, batches scored at once, one thread each (0: one per torch thread; 1: one batch at a time on all
    # threads); AASIST's and the fusion models' scores are the same to the bit either way
    # (antispoof.scoring.batches_at_once says why it is faster)
    parallel_batches: int = 0

    @property
    def architecture(self) -> str:
        return str(self.model_config.get("architecture", ""))

    @property
    def nb_samp(self) -> int:
        from antispoof.audio import NB_SAMP

        return int(self.model_config.get("nb_samp", NB_SAMP))

    @property
    def scoring_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    @property
    def scoring_options(self) -> dict:
        """What the scoring loop (``antispoof.scoring.predict_logits``) takes from the config."""
        return {"nb_samp": self.nb_samp, "scoring": self.scoring, "hop": self.scoring_hop}

    def to_dict(self) -> dict:
        """The config as JSON-ready values (what ``config.conf`` in the experiment folder holds)."""
        return _drop_none(dataclasses.asdict(self))


POSITIVE = (
    "eval_shard_size",
    "batch_size",
    "eval_batch_size",
    "num_epochs",
    "early_stopping_patience",
    "top_k",
    "base_lr",
    "scoring_hop",
)
NON_NEGATIVE = (
    "num_workers",
    "parallel_batches",
    "dses_bootstrap",
    "dses_every_epochs",
    "swa_epochs",
    "lr_min",
    "weight_decay",
    "max_grad_norm",
)


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_drop_none(v) for v in obj]
    return obj


def _closest(key: str, known) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    return getattr(hint, "__name__", str(hint))


def _coerce_scalar(value: Any, hint, where: str):
    """``value`` as type ``hint`` (bool, int, float, str), accepting numeric and boolean strings."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif hint in (int, float) and not isinstance(value, bool):
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if isinstance(number, (int, float)) and (hint is float or float(number).is_integer()):
            return hint(number)
    elif hint is str and isinstance(value, str):
        return value
    elif hint is dict and isinstance(value, dict):
        return dict(value)
    raise ConfigValueError(f"{where} must be {_type_name(hint)}, got {json.dumps(value)}")


def _coerce(value: Any, hint, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is Literal:
        if value not in args:
            raise ConfigValueError(
                f"{where} must be one of {', '.join(map(repr, args))}, got {json.dumps(value)}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)) or (origin is tuple and len(value) != len(args)):
            raise ConfigValueError(f"{where} must be a list ({_type_name(hint)}), got {json.dumps(value)}")
        inner = args if origin is tuple else args * len(value)
        return origin(_coerce(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, inner)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigValueError(f"{where} must be an object ({_type_name(hint)}), got {json.dumps(value)}")
        key_type, value_type = args
        return {_coerce(k, key_type, where): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    return _coerce_scalar(value, hint, where)


def _check_range(key: str, value, where: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if key in POSITIVE and value <= 0:
        raise ConfigValueError(f"{where} must be > 0, got {value}")
    if key in NON_NEGATIVE and value < 0:
        raise ConfigValueError(f"{where} must be >= 0, got {value}")


def _build(cls, raw: Any, where: str = ""):
    """A ``cls`` dataclass from a JSON mapping: unknown keys refused, types coerced, required keys checked."""
    if not isinstance(raw, Mapping):
        raise ConfigValueError(f"{where or 'the config'} must be a JSON object, got {json.dumps(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in raw:
        if key not in fields and not str(key).startswith("_"):
            raise ConfigValueError(f"unknown key {prefix}{key!r}{_closest(key, fields)}")
    values = {}
    for name, spec in fields.items():
        if name not in raw:
            required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            if required:
                raise ConfigValueError(f"missing key {prefix}{name!r}")
            continue
        values[name] = _coerce(raw[name], hints[name], f"{prefix}{name}")
        _check_range(name, values[name], f"{prefix}{name}")
    return cls(**values)


def _validate_parts(config: ExperimentConfig) -> None:
    """Parts owned by other modules: the model registry, RawBoost and the demo check their own sections."""
    from models import validate_model_config

    config.model_config = validate_model_config(config.model_config)
    if config.rawboost is not None:
        from antispoof.augment.rawboost import make_rawboost

        make_rawboost(config.rawboost)  # refuses an unknown algorithm or parameter
    if config.averaging and config.averaging.method == "swa" and config.averaging.swa_epochs < 1:
        raise ConfigValueError("averaging.swa_epochs must be >= 1 with method 'swa'")
    _validate_scoring(config)


def _validate_scoring(config: ExperimentConfig) -> None:
    """A hop that leaves no gap between windows; "full" only for a model that takes any length. With "windows"
    the hop is filled in, so that the experiment's config.conf records the one that was used."""
    if config.scoring_hop is not None and config.scoring_hop > config.nb_samp:
        raise ConfigValueError(
            f"scoring_hop must be <= nb_samp ({config.nb_samp}) so that no sample is skipped, "
            f"got {config.scoring_hop}"
        )
    if config.scoring == "windows" and config.scoring_hop is None:
        config.scoring_hop = config.nb_samp
    if config.scoring == "full":
        from antispoof.scoring import full_length_problem

        if problem := full_length_problem(config.architecture):
            raise ConfigValueError(f"scoring 'full': {problem}")


def parse_config(raw: Mapping, source: str = "config") -> ExperimentConfig:
    """Validate a config mapping; any problem is a :class:`ConfigValueError` whose message starts with ``source``."""
    try:
        config = _build(ExperimentConfig, raw)
        _validate_parts(config)
    except ConfigValueError as exc:
        raise ConfigValueError(f"{source}: {exc}") from None
    except ValueError as exc:  # the model registry's and RawBoost's own checks
        raise ConfigValueError(f"{source}: {exc}") from None
    return config


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
        raise SystemExit(f"error: {path}: a config is a JSON object, not {json.dumps(config)[:40]}")
    return config


def read_config(path: str | os.PathLike, overrides: Mapping | None = None) -> ExperimentConfig:
    """Read, apply command-line ``overrides`` (None values ignored) and validate a config file, or exit with one
    line naming the file and the key."""
    raw = read_json_config(path)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return parse_config(raw, str(path))
    except ConfigValueError as exc:
        raise SystemExit(f"error: {exc}") from None


__all__ = [
    "SCORING_MODES",
    "AveragingConfig",
    "ConfigValueError",
    "ExperimentConfig",
    "OptimConfig",
    "parse_config",
    "read_config",
    "read_json_config",
]
