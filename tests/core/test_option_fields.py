"""One option style: a frozen dataclass whose fields carry default, help and accepted values."""

from __future__ import annotations

import dataclasses

import pytest

from core.options import field_types, option, option_choices, value_problem
from core.registry import Registry


@dataclasses.dataclass(frozen=True)
class Example:
    name: str = option("a", "a name", choices=("a", "b"))
    count: int = option(1, "how many", minimum=1)
    ratio: float = option(0.1, "a fraction", minimum=0, maximum=0.5, exclusive_maximum=True)
    clip: float | None = option(None, "optional bound", minimum=0)
    flag: bool = option(True, "on or off")


def _problem(name, value):
    spec = next(f for f in dataclasses.fields(Example) if f.name == name)
    return value_problem(spec, field_types(Example)[name], value)


def test_fields_carry_their_help_and_types():
    spec = {f.name: f for f in dataclasses.fields(Example)}
    assert spec["count"].metadata["help"] == "how many" and spec["name"].metadata["choices"] == ("a", "b")
    types = field_types(Example)
    assert (types["clip"].kind, types["clip"].nullable) == (float, True)
    assert (types["count"].kind, types["count"].nullable) == (int, False)
    assert Example().count == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        Example().count = 2  # type: ignore[misc]


@pytest.mark.parametrize("name, value, problem", [
    ("name", "c", "'c' is not one of ('a', 'b')"),
    ("name", 5, "must be text (a JSON string), got 5"),
    ("count", 0, "must be a positive integer, got 0"),
    ("count", 1.5, "must be a positive integer, got 1.5"),
    ("count", True, "must be a positive integer, got True"),
    ("count", None, "must be set (null is not allowed here), got None"),
    ("ratio", 0.5, "must be in [0, 0.5), got 0.5"),
    ("ratio", "x", "must be a number, got 'x'"),
    ("clip", -1, "must be >= 0, got -1"),
    ("flag", "yes", "must be true or false, got 'yes'"),
])
def test_bad_values_say_what_is_expected(name, value, problem):
    assert _problem(name, value) == problem


@pytest.mark.parametrize("name, value", [("name", "b"), ("count", 7), ("ratio", 0), ("clip", None), ("clip", 2),
                                         ("flag", False)])
def test_good_values_pass(name, value):
    assert _problem(name, value) is None


SHAPES: Registry[str] = Registry("shape")
SHAPES.register("circle", "round")


@dataclasses.dataclass(frozen=True)
class Drawing:
    shape: str = option("circle", "a registered shape", choices=SHAPES)


def test_a_registry_as_choices_accepts_its_names_as_they_are_when_checked():
    spec = dataclasses.fields(Drawing)[0]
    kind = field_types(Drawing)["shape"]
    assert option_choices(spec) == ("circle",)
    assert value_problem(spec, kind, "square") == "'square' is not one of ('circle',)"
    SHAPES.register("square", "four corners")
    try:
        assert option_choices(spec) == ("circle", "square") and value_problem(spec, kind, "square") is None
    finally:
        SHAPES.unregister("square")
    assert value_problem(spec, kind, "square") == "'square' is not one of ('circle',)"
