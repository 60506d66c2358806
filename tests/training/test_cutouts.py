"""Each hardcore cutout blacks out the region it names, on real crops with their stored landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from datasets.layout import DataLayout, parse_crop_name
from training.transforms import cutouts


def _first_crop_with_landmarks(root, fake: bool):
    layout = DataLayout(root)
    rows = pd.read_csv(layout.folds_csv)
    for row in rows[rows["label"] == int(fake)].itertuples():
        frame, face = parse_crop_name(row.file)
        lm5 = layout.landmarks_path(row.original, frame, face)
        lm68 = layout.landmarks68_path(row.original, frame, face)
        if lm5.is_file() and lm68.is_file():
            image = cv2.cvtColor(cv2.imread(str(layout.crop_path(row.video, frame, face))), cv2.COLOR_BGR2RGB)
            diff = cv2.imread(str(layout.diff_path(row.video, frame, face)), cv2.IMREAD_GRAYSCALE) if fake else None
            return image, np.load(lm5), np.load(lm68), diff
    pytest.fail(f"no crop with both landmark files in {root}")


@pytest.fixture(scope="module")
def real_crop(preprocessed_root):
    return _first_crop_with_landmarks(preprocessed_root, fake=False)


@pytest.fixture(scope="module")
def fake_crop(preprocessed_root):
    return _first_crop_with_landmarks(preprocessed_root, fake=True)


def _points_on_segment(start, end, count=9):
    return [(start + (end - start) * t) for t in np.linspace(0, 1, count)]


@pytest.mark.parametrize("part", ["eyes", "mouth", "nose"])
def test_landmark_cutout_blacks_out_its_line_only(real_crop, part):
    image, lm5, _, _ = real_crop
    # keep black pixels of the crop itself from counting as cutout
    image = np.maximum(image, 1)
    out = getattr(cutouts, f"blackout_{part}")(image, lm5)
    if part == "eyes":
        start, end = lm5[cutouts.LEFT_EYE], lm5[cutouts.RIGHT_EYE]
    elif part == "mouth":
        start, end = lm5[cutouts.MOUTH_LEFT], lm5[cutouts.MOUTH_RIGHT]
    else:
        start, end = lm5[cutouts.NOSE], (lm5[cutouts.MOUTH_LEFT] + lm5[cutouts.MOUTH_RIGHT]) / 2
    for x, y in _points_on_segment(start, end):
        assert (out[int(round(y)), int(round(x))] == 0).all(), f"{part}: ({x:.0f}, {y:.0f}) not blacked out"
    blacked = (out == 0).all(axis=2)
    assert 0 < blacked.mean() < 0.4
    # untouched far from the line: the crop's corners
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert (out[y, x] == image[y, x]).all()
    # the other landmark regions stay visible
    other = lm5[cutouts.MOUTH_LEFT] if part == "eyes" else lm5[cutouts.LEFT_EYE]
    assert not (out[int(other[1]), int(other[0])] == 0).all()
    assert out is not image and (image > 0).all(), "the input must not be changed in place"


@pytest.mark.parametrize("half", cutouts.HALVES)
def test_hull_cutout_blacks_out_one_half_of_the_face(real_crop, half):
    image, _, lm68, _ = real_crop
    image = np.maximum(image, 1)
    hull = cutouts.hull_mask(image.shape[:2], lm68).astype(bool)
    ys, xs = np.nonzero(hull)
    cy, cx = int(ys.mean()), int(xs.mean())
    out = cutouts.blackout_hull_half(image, lm68, half)
    blacked = (out == 0).all(axis=2)
    side = np.zeros_like(hull)
    if half == "top":
        side[:cy] = True
    elif half == "bottom":
        side[cy:] = True
    elif half == "left":
        side[:, :cx] = True
    else:
        side[:, cx:] = True
    named, other = hull & side, hull & ~side
    assert named.sum() > 50 and other.sum() > 50
    assert blacked[named].all(), f"the {half} half of the hull must be black"
    assert not blacked[other].any(), "the other half of the hull must stay"
    assert not blacked[~hull].any(), "nothing outside the hull is touched"


def test_bitmask_keeps_some_of_a_fakes_diff_area(fake_crop):
    image, _, _, diff = fake_crop
    assert diff is not None and diff.shape == image.shape[:2]
    rng = np.random.default_rng(0)
    for _ in range(10):
        keep = cutouts.choose_bit_mask(image.shape, diff, True, rng)
        assert keep is not None
        assert np.count_nonzero(diff * keep) > cutouts.BITMASK_MIN_DIFF_PX
        out = cutouts.blackout_bitmask(image, keep)
        assert (out[keep == 0] == 0).all() and (out[keep == 1] == image[keep == 1]).all()
        assert 0.2 <= (keep == 0).mean() <= 0.55
    # a fake whose diff is empty never gets a bit mask (it would hide the whole manipulation)
    assert cutouts.choose_bit_mask(image.shape, np.zeros_like(diff), True, rng) is None


def test_change_padding_cuts_context(real_crop):
    image = real_crop[0]
    h, w = image.shape[:2]
    assert cutouts.change_padding(image, 3) is image
    cut = cutouts.change_padding(image, 6)
    assert h * 0.7 < cut.shape[0] < h and w * 0.7 < cut.shape[1] < w


def test_apply_hardcore_uses_the_recipe_probabilities(real_crop):
    image, lm5, lm68, _ = real_crop
    inputs = cutouts.CutoutInputs(lm5, lm68, None, False)
    rng = np.random.default_rng(1)
    names = [cutouts.apply_hardcore(image, inputs, rng)[1] for _ in range(2000)]
    share = {k: names.count(k) / len(names) for k in set(names)}
    # 0.7 x 0.5 eyes, 0.7 x 0.25 mouth, 0.7 x 0.125 nose; 0.3 x 0.2 hull; 0.3 x 0.8 x 0.1 bit mask
    assert share["eyes"] == pytest.approx(0.35, abs=0.04)
    assert share["mouth"] == pytest.approx(0.175, abs=0.03)
    assert share["nose"] == pytest.approx(0.0875, abs=0.025)
    assert sum(v for k, v in share.items() if k.startswith("hull_")) == pytest.approx(0.06, abs=0.02)
    assert share["bitmask"] == pytest.approx(0.024, abs=0.012)
    # without 5-point landmarks the landmark cutout is never drawn
    no_lm = cutouts.CutoutInputs(None, lm68, None, False)
    names = {cutouts.apply_hardcore(image, no_lm, rng)[1] for _ in range(300)}
    assert not names & {"eyes", "mouth", "nose"}


def test_show_augmentations_writes_the_grid(preprocessed_root, tmp_path):
    from training.tools.show_augmentations import main

    out = tmp_path / "grid.png"
    assert main(["--data-dir", str(preprocessed_root), "--out", str(out), "--rows", "2", "--tile", "64",
                 "--pipeline-columns", "2"]) == 0
    grid = cv2.imread(str(out))
    tile_h = 64 + 18
    # crop, eyes, mouth, nose, 4 hull halves, bit mask, self-blended, SBI mask, 2 pipeline draws
    assert grid.shape[:2] == (2 * tile_h, 13 * 64)
    crop_tile, eyes_tile = grid[18:tile_h, :64], grid[18:tile_h, 64:128]
    assert (eyes_tile.max(axis=2) == 0).sum() > (crop_tile.max(axis=2) == 0).sum() + 20
