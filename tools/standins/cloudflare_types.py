"""The inputs Pulumi's Cloudflare SDK declares for each type, read from the `pulumi_cloudflare` package.

The stand-in provider validates what the engine sends against these, so a program that the real
provider would refuse for a missing, unknown or mistyped property is refused here too. Nothing is
written by hand: every property, its wire name (`zoneId`), its type and whether it is required come
from the SDK's own `*Args` classes (inputs) and `_*State` classes (everything the provider reports).
"""

from __future__ import annotations

import collections.abc
import sys
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pulumi

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's marker of a value not known in preview


@dataclass(frozen=True)
class Field:
    """One property: its Python and wire names, the value kind, and the shape inside lists and objects."""

    python_name: str
    wire_name: str
    kind: str  # str | bool | int | float | list | map | object | any
    required: bool
    item: Field | None = None  # list and map elements
    properties: dict[str, Field] = field(default_factory=dict)  # object properties, by wire name


def schema_of(cls: type) -> dict[str, Field]:
    """Every property of an SDK `*Args`/`_*State`/result class, by wire name."""
    return dict(_schema_of(cls))


@cache
def _schema_of(cls: type) -> tuple[tuple[str, Field], ...]:
    found: list[tuple[str, Field]] = []
    for python_name in dir(cls):
        prop = getattr(cls, python_name, None)
        if not isinstance(prop, property) or prop.fget is None:
            continue
        wire_name = getattr(prop.fget, "_pulumi_name", None)
        if wire_name is None:
            continue
        hint = typing.get_type_hints(prop.fget, globalns=_namespace(prop.fget))["return"]
        found.append((wire_name, _field(python_name, wire_name, hint)))
    return tuple(found)


def _namespace(function: Any) -> dict[str, Any]:
    # The SDK annotates with forward references ('ZoneAccountArgs', 'Output[T]') resolved in its module.
    names = dict(vars(sys.modules[function.__module__]))
    names.update(Output=pulumi.Output, T=typing.TypeVar("T"))
    return names


def _field(python_name: str, wire_name: str, hint: Any) -> Field:
    core, optional = _core(hint)
    kind, item, properties = _kind(core)
    return Field(python_name, wire_name, kind, not optional, item, properties)


def _core(hint: Any) -> tuple[Any, bool]:
    """Strip `Input[...]` (Awaitable, Output) and Optional from an SDK annotation: the plain type left."""
    if typing.get_origin(hint) is not typing.Union:
        return hint, False
    args = typing.get_args(hint)
    optional = type(None) in args
    plain = [a for a in args if a is not type(None) and not _is_wrapper(a)]
    return (plain[0] if len(plain) == 1 else typing.Any), optional


def _is_wrapper(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return origin in (collections.abc.Awaitable, pulumi.Output)


def _kind(core: Any) -> tuple[str, Field | None, dict[str, Field]]:
    origin = typing.get_origin(core)
    if origin in (collections.abc.Sequence, list):
        (element,) = typing.get_args(core)
        return "list", _field("", "", element), {}
    if origin in (collections.abc.Mapping, dict):
        element = typing.get_args(core)[-1]
        return "map", _field("", "", element), {}
    if core in (str, bool, int, float):
        return core.__name__, None, {}
    if isinstance(core, type) and _schema_of(core):
        return "object", None, dict(_schema_of(core))
    return "any", None, {}


def validate(schema: dict[str, Field], values: dict[str, Any], where: str = "") -> list[tuple[str, str]]:
    """Every problem of `values` against `schema`: (property path, reason). Unknowns pass (preview)."""
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        path = f"{where}{name}"
        if name.startswith("__"):
            continue  # engine bookkeeping such as __defaults
        spec = schema.get(name)
        if spec is None:
            problems.append((path, f"unknown property {path!r}: the Cloudflare provider has no such argument"))
            continue
        problems += _check_value(spec, value, path)
    for name, spec in schema.items():
        if spec.required and values.get(name) is None:
            problems.append((f"{where}{name}", f"missing required property {where}{name!r}"))
    return problems


def _check_value(spec: Field, value: Any, path: str) -> list[tuple[str, str]]:
    if value is None or value == UNKNOWN or spec.kind == "any":
        return []
    expected = {"str": str, "bool": bool, "list": list, "map": dict, "object": dict}.get(spec.kind)
    if spec.kind in ("int", "float"):
        # Numbers cross the wire as floats; an int property must still hold a whole number.
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
        if good and spec.kind == "int":
            good = float(value).is_integer()
        return [] if good else [(path, f"{path}: expected {'an integer' if spec.kind == 'int' else 'a number'}")]
    if expected is not None and not isinstance(value, expected):
        return [(path, f"{path}: expected {spec.kind}, got {type(value).__name__}")]
    if spec.kind == "list" and spec.item is not None:
        return [p for i, v in enumerate(value) for p in _check_value(spec.item, v, f"{path}[{i}]")]
    if spec.kind == "map" and spec.item is not None:
        return [p for k, v in value.items() for p in _check_value(spec.item, v, f"{path}.{k}")]
    if spec.kind == "object":
        return validate(spec.properties, value, f"{path}.")
    return []
