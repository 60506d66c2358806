"""Where a training epoch's fakes come from: a registry chosen by the config's ``"fakes"``.

Every epoch trains on every real crop and as many fakes. A source says how many of those may be the
data's own fake crops (drawn per epoch from the fake videos' crops) and whether the rest are
self-blended copies of real crops (SBI: a face blended back into itself, no fake video needed; see
``training.transforms.self_blend``):

* ``real``: the data's fakes only (the DFDC winner's recipe);
* ``self_blended``: self-blended fakes only (reals alone are enough);
* ``both``: half of each (half the reals' count, rounded up, from the data).

A new source is one :class:`FakeSource` and one ``FAKE_SOURCES.register`` line; the dataset and the
config check read nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.registry import Registry


@dataclass(frozen=True)
class FakeSource:
    """``data_fakes(n_reals)``: at most this many of the data's fake crops per epoch (fewer when the data
    has fewer). ``self_blends``: the fakes are filled up to ``n_reals`` with self-blended real crops, and
    a validation set without fakes gets its reals as self-blended fakes. ``needs_data_fakes``: a fold
    split without fake crops cannot train or validate (False: reals alone are enough)."""

    description: str
    data_fakes: Callable[[int], int]
    self_blends: bool
    needs_data_fakes: bool = True


FAKE_SOURCES: Registry[FakeSource] = Registry("fake source")


def as_many_as_reals(n_reals: int) -> int:
    return n_reals


def none_of_the_data(n_reals: int) -> int:
    return 0


def half_of_the_reals(n_reals: int) -> int:
    return (n_reals + 1) // 2


FAKE_SOURCES.register("real", FakeSource("the data's fake videos", as_many_as_reals, self_blends=False))
FAKE_SOURCES.register("self_blended", FakeSource("self-blended copies of the real crops (SBI), from reals only",
                                                 none_of_the_data, self_blends=True, needs_data_fakes=False))
FAKE_SOURCES.register("both", FakeSource("half the data's fakes, half self-blended", half_of_the_reals,
                                         self_blends=True))
