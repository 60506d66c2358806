import pytest

from core.registry import Registry


def test_entries_are_found_by_name_and_unknown_names_list_the_known_ones():
    shapes = Registry("shape")

    @shapes.register("square")
    def square(side):
        return side * side

    shapes.register("line", len)
    assert shapes.get("square")(3) == 9 and shapes.get("line")("abcd") == 4
    assert shapes.names() == ("square", "line") and "square" in shapes and len(shapes) == 2
    with pytest.raises(ValueError, match="unknown shape 'circle'; known: square, line"):
        shapes.get("circle")


def test_a_name_is_claimed_once_unless_replaced_and_can_be_removed():
    shapes = Registry("shape")
    shapes.register("square", abs)
    shapes.register("square", abs)  # the same entry again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="shape 'square' is already registered"):
        shapes.register("square", len)
    shapes.register("square", len, replace=True)
    assert shapes.get("square") is len
    shapes.unregister("square")
    assert "square" not in shapes
    with pytest.raises(ValueError, match="non-empty string"):
        shapes.register("", len)
