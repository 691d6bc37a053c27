"""Model options: every architecture declares its ``model_config`` keys once, and ``read_options`` reads them.

A model module holds ``OPTIONS``, a dict ``name -> Option(kind, default, ...)``; its ``Model.__init__`` calls
``read_options(model_config, OPTIONS, "<architecture> model_config")`` and gets a canonical copy: every key
known, every value of its kind (booleans also from the strings "true"/"false", integers and floats from
numbers), defaults filled in. ``models.validate_model_config`` runs the same reading without building a model,
so a config can be checked before any data is read. Every error is one line naming the key.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from antispoof.audio import NB_SAMP


class ConfigError(ValueError, KeyError):
    """A model_config lacks a key, names an unknown one, or holds a value of the wrong kind.

    Also a KeyError, as a missing model option was before the options were declared.
    """

    __str__ = ValueError.__str__  # KeyError's would quote the message


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")  # a default: the key must be given
ABSENT = _Marker("ABSENT")  # a default: optional, and left out of the canonical copy when not given


class InvalidValue(ValueError):
    """Raised by a kind; its message says what the value must be ("must be an integer")."""


# ---- kinds: a value as written in JSON -> the value the model uses ------------------------------------------


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):  # the upstream configs' spelling
        return value.lower() == "true"
    raise InvalidValue("must be true or false")


def integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidValue("must be an integer")


def positive_integer(value: Any) -> int:
    value = integer(value)
    if value < 1:
        raise InvalidValue("must be a positive integer")
    return value


def number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidValue("must be a number")


def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise InvalidValue("must be a string")


def list_of(kind: Callable[[Any], Any], length: int) -> Callable[[Any], list]:
    """A list of exactly ``length`` values of ``kind`` (``integer`` or ``number``)."""
    what = f"a list of {length} {kind.__name__}s"

    def kind_list(value: Any) -> list:
        if not isinstance(value, list | tuple) or len(value) != length:
            raise InvalidValue(f"must be {what}")
        try:
            return [kind(item) for item in value]
        except InvalidValue:
            raise InvalidValue(f"must be {what}") from None

    kind_list.__name__ = what
    return kind_list


channel_pair = list_of(integer, 2)


def aasist_filts(value: Any) -> list:
    """AASIST's ``[size, [in, out], [in, out], [in, out], [in, out]]`` (front-end size, encoder channels)."""
    what = "must be [size, [in, out], [in, out], [in, out], [in, out]] (integers)"
    if not isinstance(value, list | tuple) or len(value) != 5:
        raise InvalidValue(what)
    try:
        return [integer(value[0]), *(channel_pair(pair) for pair in value[1:])]
    except InvalidValue:
        raise InvalidValue(what) from None


@dataclass(frozen=True)
class Section:
    """A kind: a nested JSON object with options of its own (e.g. a fusion model's ``aasist_config``)."""

    schema: Mapping[str, Option]


@dataclass(frozen=True)
class Option:
    """One ``model_config`` key.

    kind      a function from the JSON value to the model's value (raises InvalidValue), or a Section
    default   the value when the key is absent; REQUIRED, or ABSENT (optional, not filled in)
    choices   the values allowed, if only some are
    nullable  null is a valid value (e.g. "no weight file")
    fallback  a Section key where older (upstream) configs put this key; read when it is absent here
    note      why, appended to an error about this key
    """

    kind: Callable[[Any], Any] | Section
    default: Any = REQUIRED
    choices: tuple = ()
    nullable: bool = False
    fallback: str = ""
    note: str = ""


# samples per crop: valid in every model_config because the data pipeline reads it from there
NB_SAMP_OPTION = Option(positive_integer, default=NB_SAMP, note="samples per training or scoring crop")


# ---- reading --------------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as JSON (as the user wrote it), shortened to keep the message on one line."""
    shown = json.dumps(value, default=repr)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _unknown_key(key: str, known: set[str], owner: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
    return ConfigError(f"{owner}: unknown key {str(key)!r} ({hint})")


def _read_value(value: Any, option: Option, key: str, owner: str) -> Any:
    note = f" ({option.note})" if option.note else ""
    if value is None:
        if option.nullable:
            return None
        raise ConfigError(f"{owner}: {key} must not be null{note}")
    if isinstance(option.kind, Section):
        return read_options(value, option.kind.schema, f"{owner}.{key}")
    try:
        read = option.kind(value)
    except InvalidValue as exc:
        raise ConfigError(f"{owner}: {key} {exc}, got {_shown(value)}{note}") from None
    if option.choices and read not in option.choices:
        allowed = " or ".join(_shown(choice) for choice in option.choices)
        raise ConfigError(f"{owner}: {key} must be {allowed}, got {_shown(value)}{note}")
    return read


def _given(model_config: Mapping, key: str, option: Option) -> tuple[bool, Any]:
    """Whether ``key`` is given (here, or in its fallback section), and its value."""
    if key in model_config:
        return True, model_config[key]
    section = model_config.get(option.fallback) if option.fallback else None
    if isinstance(section, Mapping) and key in section:
        return True, section[key]
    return False, None


def read_options(model_config: Any, schema: Mapping[str, Option], owner: str) -> dict:
    """The canonical copy of ``model_config`` under ``schema``; ``owner`` names it in errors
    ("AASIST model_config"). ``architecture`` is always allowed and kept as given unless the schema declares it.
    """
    if not isinstance(model_config, Mapping):
        raise ConfigError(f"{owner} must be a JSON object, got {type(model_config).__name__}")
    known = set(schema) | {"architecture"}
    for key in model_config:
        if key not in known:
            raise _unknown_key(key, known, owner)
    options = {}
    if "architecture" in model_config and "architecture" not in schema:
        options["architecture"] = model_config["architecture"]
    for key, option in schema.items():
        given, value = _given(model_config, key, option)
        if given:
            options[key] = _read_value(value, option, key, owner)
        elif option.default is REQUIRED:
            note = f" ({option.note})" if option.note else ""
            raise ConfigError(f"{owner} lacks the required key {key!r}{note}")
        elif option.default is not ABSENT:
            options[key] = copy.deepcopy(option.default)
    return options
