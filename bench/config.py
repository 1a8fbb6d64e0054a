"""Typed, validated configs: a frozen dataclass per method, built from plain dicts.

Precedence is defaults < variant < suite overrides < CLI, merged as dicts and then coerced
through the dataclass once, so a misspelt key or a wrong type fails before any work starts.
Also the strict schema helpers the suite and report-layout YAML files are validated with.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from bench.errors import BenchError, did_you_mean

C = TypeVar("C")


def _coerce(name: str, value: Any, annotation: Any, owner: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # Optional[X], X | None
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], owner)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise BenchError(f"{owner}.{name} must be a list, got {value!r}", "give a YAML list")
        item_type = args[0] if args else Any
        return tuple(_coerce(name, v, item_type, owner) for v in value)
    if annotation is Any:
        return value
    kind = getattr(annotation, "__name__", str(annotation))

    def bad(note: str = "", fix: str | None = None) -> BenchError:
        return BenchError(f"{owner}.{name} = {value!r} is not a valid {kind}{note}",
                          fix or f"set {name} to a {kind} value")

    if annotation is bool:
        # only real booleans and the words true / false: bool("no") is True, bool(2) hides a typo
        if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad(fix=f"set {name} to true or false")
    if annotation in (int, float) and isinstance(value, bool):  # int(True) == 1: never a number here
        raise bad(" (true/false is not a number)")
    try:
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():  # also inf / nan
                raise ValueError(value)
            return int(value)
        if annotation is float:
            # RecBole-style YAML may leave '1e-4' as a string; accept it, reject words.
            number = float(value)
            if not math.isfinite(number):
                raise BenchError(f"{owner}.{name} = {value!r} is not a finite number",
                                 f"set {name} to a finite number (not inf or nan)")
            return number
        if annotation is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise bad() from None
    return value


def build_config(cls: type[C], *layers: Mapping[str, Any] | None) -> C:
    """Merge ``layers`` (later wins) over ``cls`` defaults; reject unknown keys and bad types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in fields:
                raise BenchError(
                    f"unknown config key {key!r} for {cls.__name__}", did_you_mean(key, fields)
                )
            merged[key] = _coerce(key, value, hints[key], cls.__name__)
    obj = cls(**merged)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def config_dict(cfg: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def require(cond: bool, owner: str, problem: str, fix: str) -> None:
    if not cond:
        raise BenchError(f"{owner}: {problem}", fix)


# --- strict YAML schemas (suite files, report layouts) ----------------------------------------
# pydantic models with ``extra="forbid"`` and strict types (``optional: "no"`` is not false, a
# seed of ``true`` is not 1); ``schema_error`` turns the first ValidationError into one BenchError
# naming the key path, what it must be (a field's ``description``) and a fix (its ``fix``).

# what a value must be, per pydantic error type, where the field gives no description
_EXPECTED = {
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "string_type": "a string",
    "int_type": "an int", "int_from_float": "an int", "int_parsing": "an int",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "float_type": "a number", "float_parsing": "a number",
}
_ITEM_MODEL_ERRORS = {"model_type", "model_attributes_type", "dict_type"}


def schema_field(default: Any, what: str, fix: str, **constraints: Any) -> Any:
    """A model field whose errors read ``<path> must be <what>, got <value>`` with ``fix``."""
    return Field(default, description=what, json_schema_extra={"fix": fix}, **constraints)


def bad_value(problem: str = "", fix: str = "") -> PydanticCustomError:
    """Raise from a validator: without ``problem`` the field's own description is the message."""
    return PydanticCustomError("bench", "{problem}", {"problem": problem, "fix": fix})


class StrictModel(BaseModel):
    """One YAML mapping: only these keys (an unknown one gets did-you-mean), each of exactly its type."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted((k for k in data if k not in cls.model_fields), key=str)
            if unknown:
                raise PydanticCustomError("unknown_key", "unknown key {key}",
                                          {"key": unknown[0], "fix": did_you_mean(str(unknown[0]), cls.model_fields)})
            cls.check_mapping(data)
        return data

    @classmethod
    def check_mapping(cls, data: dict) -> None:
        """Checks on the raw mapping before its fields (raise ``bad_value``)."""


def _strip(annotation: Any) -> Any:
    """``X | None`` -> X, ``Annotated[X, ...]`` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_on(model: type[BaseModel], loc: tuple) -> tuple[int, Any] | None:
    """(index in ``loc``, FieldInfo) of the deepest model field along ``loc``."""
    current: Any = model
    found = None
    for i, part in enumerate(loc):
        current = _strip(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                break
            found, current = (i, field), field.annotation
        elif typing.get_origin(current) in (dict, list, tuple) and typing.get_args(current):
            current = typing.get_args(current)[-1]
        else:
            break
    return found


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(raw: Any, loc: tuple, default: Any) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return default
    return raw


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_error(error: ValidationError, model: type[BaseModel], raw: Any, where: str, fix: str) -> BenchError:
    """The first error of ``error`` (validating ``raw`` as ``model``) as one BenchError."""
    err = error.errors(include_url=False)[0]
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    found = _field_on(model, loc)
    field_fix = ((found[1].json_schema_extra or {}).get("fix") if found else None) or fix
    at = f"{where}: {_key_path(loc)}" if loc else where
    if kind == "unknown_key":
        return BenchError(f"{at}: unknown key {ctx['key']!r}", ctx["fix"])
    if kind == "missing":
        return BenchError(f"{at} is missing", field_fix)
    if loc and loc[-1] == "[key]":  # a mapping's key of the wrong type
        return BenchError(f"{where}: {_key_path(loc[:-2])}: the name {loc[-2]!r} must be a string",
                          "quote it, e.g. '1': {}")
    if kind == "bench" and ctx.get("problem"):
        return BenchError(f"{at}: {ctx['problem']}", ctx.get("fix") or field_fix)
    if not loc:
        return BenchError(f"{where} must be a mapping with keys {', '.join(model.model_fields)}, got {_show(raw)}", fix)
    if found is not None and found[1].description:
        i, field = found
        rest = loc[i + 1:]
        if not rest or (all(isinstance(p, int) for p in rest) and kind not in _ITEM_MODEL_ERRORS):
            value = _value_at(raw, loc[: i + 1], err["input"])
            return BenchError(f"{where}: {_key_path(loc[: i + 1])} must be {field.description}, got {_show(value)}",
                              field_fix)
    expected = _EXPECTED.get(kind)
    if expected:
        return BenchError(f"{at} must be {expected}, got {_show(err['input'])}", field_fix)
    return BenchError(f"{at}: {err['msg']}, got {_show(err['input'])}", field_fix)


def read_yaml(path: Path, what: str, fix: str) -> Any:
    """``path`` parsed as YAML; an unreadable, non-UTF-8 or malformed file is one BenchError."""
    import yaml

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BenchError(f"{what} {path} cannot be read ({e.strerror or e})", fix) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BenchError(f"{what} {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                         f"a {what} is a YAML text file; {fix}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:  # never skip a broken file silently
        raise BenchError(f"{what} {path} is not valid YAML: {e}", "fix the YAML syntax") from None


# per-dataset settings: a method config's ``per_dataset`` field maps a dataset name to field values
def check_per_dataset(cfg: Any) -> None:
    """``per_dataset`` is {dataset: {field: value}} with known fields and valid values."""
    owner = type(cfg).__name__
    require(isinstance(cfg.per_dataset, dict) and all(isinstance(v, dict) for v in cfg.per_dataset.values()),
            owner, "per_dataset must map dataset names to {field: value} mappings",
            "e.g. per_dataset: {amazon-book: {learning_rate: 1.0e-4}}")
    for values in cfg.per_dataset.values():
        require("per_dataset" not in values, owner, "per_dataset cannot set per_dataset", "drop the nested key")
        build_config(type(cfg), {**config_dict(cfg), "per_dataset": {}}, values)  # raises on a bad key / value


def on_dataset(cfg: Any, dataset: str) -> Any:
    """The config with ``per_dataset[dataset]`` applied (unchanged for a dataset not listed)."""
    values = cfg.per_dataset.get(dataset)
    return build_config(type(cfg), config_dict(cfg), values) if values else cfg
