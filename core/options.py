"""Typed, frozen option objects: one style for every config of the project.

A config is a frozen dataclass whose fields are made by :func:`option`: the field's default, its help
text and the values it accepts (choices, bounds) sit on one line, and the code that offers the option
(command-line flags, JSON config files) reads them from the field's metadata. The predictor's options
and the training config are both built this way. The accepted values are a tuple, or a registry
(``core.registry.Registry``) whose names they are, read when a value is checked (:func:`option_choices`),
so an entry registered later is accepted.

:func:`value_problem` checks one value against its field (type from the annotation, ``None`` only where
the annotation allows it, choices, bounds) and says what is wrong in words a user can act on.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

from core.registry import Registry


def option(default: Any, help: str, *, choices: tuple | Registry | None = None,
           parse: Callable[[str], Any] | None = None, flag: str | None = None, metavar: str | None = None,
           minimum: float | None = None, maximum: float | None = None, exclusive_maximum: bool = False) -> Any:
    """A field of an options dataclass with what a command line or a config file needs to offer it.

    ``default``: ``dataclasses.MISSING`` for an option that must be given; ``choices``: the accepted
    values, or the registry whose names they are; ``parse``: text -> value for a flag (default: the
    type of ``default``); ``flag``: the flag's name when it is not ``--`` plus the field name with
    dashes; ``minimum`` / ``maximum``: the allowed range of a number (``exclusive_maximum``: the
    maximum itself is not allowed)."""
    return field(default=default, metadata={"help": help, "choices": choices, "parse": parse, "flag": flag,
                                            "metavar": metavar, "minimum": minimum, "maximum": maximum,
                                            "exclusive_maximum": exclusive_maximum})


def option_choices(spec: dataclasses.Field) -> tuple | None:
    """The values an option accepts now (a registry's names as they are at this moment), None: any."""
    choices = spec.metadata["choices"]
    return choices.names() if isinstance(choices, Registry) else choices


@dataclasses.dataclass(frozen=True)
class FieldType:
    """What a field's annotation says: the type of its values and whether ``None`` is allowed."""

    kind: type
    nullable: bool


@functools.cache
def field_types(cls: type) -> dict[str, FieldType]:
    """Each field of dataclass ``cls`` -> its :class:`FieldType` (``int | None`` -> int, nullable)."""
    hints = typing.get_type_hints(cls)
    found = {}
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"{cls.__name__}.{spec.name}: one type (optionally | None) per option, got {hint}")
        found[spec.name] = FieldType(typing.get_origin(kinds[0]) or kinds[0], len(kinds) < len(args))
    return found


_EXPECTED_TYPE = {bool: "true or false", float: "a number", str: "text (a JSON string)"}


def _type_problem(value: Any, kind: type, minimum: float | None) -> str | None:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:  # an integer is a number too: 0 for 0.0
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if ok:
        return None
    if kind is int:
        return "a positive integer" if minimum == 1 else "an integer"
    return _EXPECTED_TYPE.get(kind, f"a {kind.__name__}")


def value_problem(spec: dataclasses.Field, field_type: FieldType, value: Any) -> str | None:
    """What is wrong with ``value`` for the option ``spec`` (the text after the option's name:
    ``"must be an integer, got 'abc'"``, ``"'x' is not one of ('a', 'b')"``), or None when it is fine."""
    meta = spec.metadata
    if value is None:
        return None if field_type.nullable else f"must be set (null is not allowed here), got {value!r}"
    expected = _type_problem(value, field_type.kind, meta.get("minimum"))
    if expected:
        return f"must be {expected}, got {value!r}"
    choices = option_choices(spec)
    if choices is not None and value not in choices:
        return f"{value!r} is not one of {choices}"
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is None and high is None:
        return None
    below = low is not None and value < low
    above = high is not None and (value > high or (value == high and meta.get("exclusive_maximum")))
    if not (below or above):
        return None
    if high is None:
        expected = "a positive integer" if low == 1 and field_type.kind is int else f">= {low:g}"
    else:
        expected = f"in [{low:g}, {high:g}{')' if meta.get('exclusive_maximum') else ']'}"
    return f"must be {expected}, got {value!r}"
