"""A grid of augmented training samples, to check the cutouts and the pipeline by eye.

    python -m training.tools.show_augmentations --data-dir DATA_ROOT --out grid.png

One row per crop (reals and fakes with stored landmarks): the crop, each cutout (eyes, mouth, nose,
each half of the face hull, a bit mask), a self-blended copy (SBI) and its mask, then the full training pipeline (cutout draw + every
augmentation) a few times.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

from core.geometry import face_to_model_input
from core.input_spec import InputSpec
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds
from training.transforms import cutouts
from training.transforms.self_blend import SelfBlendParams, self_blend

LABEL_PX = 18


def _tile(image: np.ndarray, size: int, text: str) -> np.ndarray:
    tile = face_to_model_input(image, size)
    canvas = np.full((size + LABEL_PX, size, 3), 255, dtype=np.uint8)
    canvas[LABEL_PX:] = tile
    cv2.putText(canvas, text, (3, LABEL_PX - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def augmentation_grid(data_root: str | os.PathLike, rows: int = 4, tile_px: int = 128, pipeline_columns: int = 3,
                      seed: int = 0) -> np.ndarray:
    """RGB uint8 grid: one row per crop, columns as in the module docstring."""
    folds = read_folds(data_root)
    dataset = DeepFakeClassifierDataset(data_root, folds, "train", InputSpec(size_px=tile_px), seed=seed)
    dataset.items = list(dataset.rows)  # every crop, not the epoch's draw
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(dataset.items))
    reals = [i for i in order if dataset.items[i][3] < 0.5]
    fakes = [i for i in order if dataset.items[i][3] >= 0.5]
    chosen = [i for pair in zip(reals, fakes) for i in pair]
    grid_rows = []
    for index in chosen:
        if len(grid_rows) == rows:
            break
        video, frame, face, label, original, _ = dataset.items[index]
        plain = dataset.read_sample(index, rng, hardcore=False)
        inputs = dataset.cutout_inputs(video, original, frame, face, label, plain.image.shape)
        if inputs.landmarks5 is None or inputs.landmarks68 is None:
            continue
        image = plain.image
        tiles = [_tile(image, tile_px, f"{'FAKE' if label >= 0.5 else 'REAL'} {video[:6]}")]
        tiles.append(_tile(cutouts.blackout_eyes(image, inputs.landmarks5), tile_px, "eyes"))
        tiles.append(_tile(cutouts.blackout_mouth(image, inputs.landmarks5), tile_px, "mouth"))
        tiles.append(_tile(cutouts.blackout_nose(image, inputs.landmarks5), tile_px, "nose"))
        for half in cutouts.HALVES:
            tiles.append(_tile(cutouts.blackout_hull_half(image, inputs.landmarks68, half), tile_px, f"hull {half}"))
        keep = cutouts.choose_bit_mask(image.shape, inputs.diff, inputs.is_fake, rng)
        bitmask = cutouts.blackout_bitmask(image, keep) if keep is not None else image
        tiles.append(_tile(bitmask, tile_px, "bit mask" if keep is not None else "bit mask (none fits)"))
        sbi_rng = np.random.default_rng([seed, index, 99])
        blended, mask = self_blend(image, inputs.landmarks68, SelfBlendParams.draw(sbi_rng), sbi_rng)
        tiles.append(_tile(blended, tile_px, "self-blended"))
        tiles.append(_tile(np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, axis=2), tile_px,
                           "SBI mask"))
        for column in range(pipeline_columns):
            sample_rng = np.random.default_rng([seed, index, column])
            sample = dataset.read_sample(index, sample_rng)
            dataset.transforms.set_random_seed(int(sample_rng.integers(2 ** 31)))
            augmented = dataset.transforms(image=sample.image)["image"]
            tiles.append(_tile(augmented, tile_px, f"pipeline ({sample.cutout})"))
        grid_rows.append(np.hstack(tiles))
    if not grid_rows:
        raise ValueError(f"no crop in {data_root} has both 5-point and 68-point landmarks; run the landmarks "
                         f"stage of ./preprocess_data.sh")
    return np.vstack(grid_rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tools.show_augmentations", description=__doc__)
    parser.add_argument("--data-dir", required=True, help="preprocessed DATA_ROOT (folds.csv, crops, landmarks)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--rows", type=int, default=4, help="crops shown (alternating real and fake)")
    parser.add_argument("--tile", type=int, default=128, help="tile size in px")
    parser.add_argument("--pipeline-columns", type=int, default=3, help="full-pipeline draws per crop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        grid = augmentation_grid(args.data_dir, args.rows, args.tile, args.pipeline_columns, args.seed)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
