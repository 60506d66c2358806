"""Stage 4: SSIM difference masks of fake crops -> ``diffs/<fake>/<frame>_<face>_diff.png``.

For each fake crop with an original crop of the same name: ``round(255 * clip(1 - SSIM, 0, 1))`` as a
grey uint8 PNG, where SSIM is skimage's full structural-similarity map over the RGB channels, averaged
over the channels. One work item is an original with all its fakes (so ``--shard`` keeps an original's
crops and its diffs on the same machine).

    python -m preprocessing.generate_diffs DATA_ROOT
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from preprocessing.extract_crops import group_by_original, write_png_atomic
from preprocessing.generate_landmarks import read_rgb
from preprocessing.layout import DataLayout, LayoutProblem
from preprocessing.runner import (
    ItemError,
    Stage,
    WorkItem,
    remove_stale_temps,
    run_cli,
    run_stage,
    stage_parser,
)

STAGE_NAME = "generate_diffs"


def ssim_diff(original: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """Grey uint8 ``255 * (1 - SSIM)`` of two same-sized RGB uint8 crops (0: identical)."""
    if original.shape != fake.shape:
        raise ValueError(f"crop sizes differ: original {original.shape[:2]} vs fake {fake.shape[:2]}")
    if min(original.shape[:2]) < 7:  # skimage's 7x7 window
        raise ValueError(f"crop of {original.shape[1]}x{original.shape[0]} px is too small for SSIM (7x7 window)")
    _, ssim_map = structural_similarity(original, fake, channel_axis=-1, full=True, data_range=255)
    dissimilarity = np.clip(1.0 - ssim_map.mean(axis=-1), 0.0, 1.0)
    return np.round(255.0 * dissimilarity).astype(np.uint8)


def fake_diffs(layout: DataLayout, original_id: str, fake_id: str) -> list[Path]:
    """Write the diff of every fake crop that has a matching original crop; returns the files."""
    remove_stale_temps(layout.diffs_dir(fake_id))
    originals = set(layout.crop_files(original_id))
    written: list[Path] = []
    errors: list[str] = []
    for frame, face in layout.crop_files(fake_id):
        if (frame, face) not in originals:
            continue
        try:
            diff = ssim_diff(read_rgb(layout.crop_path(original_id, frame, face)),
                             read_rgb(layout.crop_path(fake_id, frame, face)))
            target = layout.diff_path(fake_id, frame, face)
            write_png_atomic(target, diff, rgb=False)
            written.append(target)
        except ValueError as exc:
            errors.append(f"{layout.crop_path(fake_id, frame, face)}: {exc}")
        except Exception as exc:  # one unreadable crop must not cost the others
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    return written


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    return [item for item in group_by_original(entries) if len(item.videos) > 1], problems


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> list[Path]:
    written: list[Path] = []
    errors: list[str] = []
    for fake in item.videos[1:]:
        try:
            written += fake_diffs(layout, item.key, fake.video_id)
        except Exception as exc:
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    return written


STAGE = Stage(STAGE_NAME, _list_items, _process)


def generate_diffs(data_root, workers: int | None = None, shard=None, progress: bool = True):
    """Stage 4 over DATA_ROOT; returns the StageSummary."""
    return run_stage(STAGE, data_root, {}, workers, shard, progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    return run_cli(lambda: generate_diffs(args.data_root, args.workers, args.shard, not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
