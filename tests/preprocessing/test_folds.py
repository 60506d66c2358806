"""Folds: identity groups (the reader's; FF++ pairs), balanced single-part folds, part-based DFDC folds."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from datasets.dfdc import with_identity_groups
from datasets.layout import DataLayout
from datasets.readers import VideoEntry
from preprocessing.generate_folds import (
    DEFAULT_N_SPLITS,
    SINGLE_PART_N_SPLITS,
    assign_folds,
    default_n_splits,
    entry_folds,
    identity_groups,
)

FFPP_FAKE = re.compile(r"^(\d+)_(\d+)_[A-Z0-9]+$")


def _entry(video_id: str, original: str | None = None, part: str = "dfdc_train_part_0") -> VideoEntry:
    return VideoEntry(video_id, Path(f"{part}/{video_id}.mp4"), "FAKE" if original else "REAL", original, part)


def _ffpp_like(n_pairs: int) -> list[VideoEntry]:
    """Pairs of FF++-style identities: ``a`` and ``b`` are originals, ``a_b_DF`` / ``b_a_F2F`` their fakes,
    grouped as the DFDC reader groups them."""
    entries = []
    for i in range(n_pairs):
        a, b = f"{2 * i:03d}", f"{2 * i + 1:03d}"
        entries += [_entry(a), _entry(b), _entry(f"{a}_{b}_DF", a), _entry(f"{a}_{b}_NT", a), _entry(f"{b}_{a}_F2F", b)]
    return with_identity_groups(entries)


def test_ffpp_pairs_form_one_group_and_share_a_fold():
    entries = _ffpp_like(7) + with_identity_groups([_entry("900"), _entry("900_901_DF", "900")])  # 901 absent
    groups = identity_groups(entries)
    assert groups["000"] == groups["001"] == "000" and groups["002"] == groups["003"] != groups["000"]
    assert groups["900"] == "900"
    folds = assign_folds(entries, ["dfdc_train_part_0"], SINGLE_PART_N_SPLITS)
    for i in range(7):
        assert folds[f"{2 * i:03d}"] == folds[f"{2 * i + 1:03d}"]


def test_single_part_default_folds_are_all_used_and_balanced():
    entries = _ffpp_like(12)
    assert default_n_splits(1) == SINGLE_PART_N_SPLITS and default_n_splits(3) == DEFAULT_N_SPLITS
    folds = assign_folds(entries, ["dfdc_train_part_0"], default_n_splits(1))
    videos_per_fold = Counter(folds[e.source_id] for e in entries)
    assert sorted(videos_per_fold) == list(range(SINGLE_PART_N_SPLITS))  # fold 0 (the default --fold) has videos
    assert max(videos_per_fold.values()) - min(videos_per_fold.values()) <= 5  # one group of 5 videos at most
    assert assign_folds(list(reversed(entries)), ["dfdc_train_part_0"], 5) == folds  # order of listing is irrelevant


def test_several_parts_follow_the_lowest_part_of_a_group():
    entries = with_identity_groups([_entry("a", part="dfdc_train_part_3"), _entry("b", part="dfdc_train_part_7"),
                                    _entry("a_b", "a", part="dfdc_train_part_3"),
                                    _entry("c", part="dfdc_train_part_18")])
    folds = assign_folds(entries, ["dfdc_train_part_3", "dfdc_train_part_7", "dfdc_train_part_18"], 16)
    assert folds == {"a": 3, "b": 3, "c": 2}


@pytest.mark.real_data
def test_ffpp_train_folds_never_split_a_pair(ffpp_train):
    entries, _ = DataLayout(ffpp_train).scan()
    folds = assign_folds(entries, ["dfdc_train_part_0"], default_n_splits(1))
    originals = {e.video_id for e in entries if not e.is_fake}
    pairs = 0
    for entry in entries:
        match = FFPP_FAKE.match(entry.video_id)
        if entry.is_fake and match and entry.source_id in folds:
            target, source = match.groups()
            assert target == entry.source_id
            if source in originals:
                assert folds[target] == folds[source], entry.video_id
                pairs += 1
    assert pairs >= 20
    videos_per_fold = Counter(folds[e.source_id] for e in entries if e.source_id in folds)
    assert sorted(videos_per_fold) == list(range(SINGLE_PART_N_SPLITS)) and min(videos_per_fold.values()) >= 15


def _split_entry(video_id: str, split: str | None, group: str, original: str | None = None) -> VideoEntry:
    return VideoEntry(video_id, Path(f"{video_id}.mp4"), "FAKE" if original else "REAL", original, None,
                      identity_group=group, dataset="toy", split=split)


def test_an_official_split_gives_the_folds_and_the_others_are_dealt_around_the_test_fold():
    entries = [_split_entry("v", "val", "g0"), _split_entry("v_f", "val", "g0", "v"),
               _split_entry("t", "test", "g1"), _split_entry("r", "train", "g2"), _split_entry("r_f", "train", "g2", "r")]
    entries += [_split_entry(f"x{i}", None, f"h{i}") for i in range(6)] + [_split_entry("x0_f", None, "h0", "x0")]
    folds = entry_folds(entries, [], 5)
    assert {k: folds[k] for k in ("v", "v_f", "t", "r", "r_f")} == {"v": 0, "v_f": 0, "t": 1, "r": 2, "r_f": 2}
    dealt = {folds[f"x{i}"] for i in range(6)}
    assert dealt == {0, 2, 3, 4, 5} and folds["x0_f"] == folds["x0"]  # five folds, none of them the test fold
    assert set(entry_folds([e for e in entries if e.split != "test"], [], 5).values()) == {0, 1, 2, 3, 4}
