"""Named registries: the seams where research changes things (model families, dataset readers, face
detectors, fake sources, aggregation rules, presets).

A registry maps a name to a builder (a class or a function). A module adds its entry with one line,
``@FAMILIES.register("classifier2d")``, and the one place that chooses (a config value or a command-line
option, at the edge) looks it up with ``FAMILIES.get(name)``, like timm's ``create_model``. Nothing else
branches on the name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> entry, for one kind of thing (``kind`` names it in messages: "model family")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None, *, replace: bool = False):
        """Add ``entry`` under ``name``; without ``entry``, a decorator that adds what it decorates.

        A name is registered once: a second entry under the same name is an error unless ``replace``
        (two modules claiming one name is a bug that would otherwise pick one silently)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")

        def add(value: T) -> T:
            if name in self._entries and not replace and self._entries[name] is not value:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy entry take it out again)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none registered"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"

