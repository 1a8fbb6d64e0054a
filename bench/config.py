"""Typed, validated configs: a frozen dataclass per method, built from plain dicts.

Precedence is defaults < variant < suite overrides < CLI, merged as dicts and then coerced
through the dataclass once, so a misspelt key or a wrong type fails before any work starts.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, TypeVar

from bench.errors import BenchError, did_you_mean

C = TypeVar("C")


def _coerce(name: str, value: Any, annotation: Any, owner: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:  # Optional[X]
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
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if annotation is float:
            # RecBole-style YAML may leave '1e-4' as a string; accept it, reject words.
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        raise BenchError(
            f"{owner}.{name} = {value!r} is not a valid {getattr(annotation, '__name__', annotation)}",
            f"set {name} to a {getattr(annotation, '__name__', annotation)} value",
        ) from None
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
