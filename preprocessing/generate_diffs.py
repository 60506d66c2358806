"""Stage 4: SSIM difference masks of fake crops -> ``diffs/<fake>/<frame>_<face>_diff.png``.

For each fake crop with an original crop of the same name: ``round(255 * clip(1 - SSIM, 0, 1))`` as a
grey uint8 PNG, where SSIM is skimage's full structural-similarity map over the RGB channels, averaged
over the channels. One work item is an original with all its fakes (so ``--shard`` keeps an original's
crops and its diffs on the same machine). An item whose original or fake has no crops fails (it is
never done with no diffs); it is redone once those crops change. A fake of another frame size than its
original's that is not a centre crop of it (stage 2 cuts no crop of it, ``extract_crops.fake_offset``) is
left out with a warning.

    python -m preprocessing.generate_diffs DATA_ROOT
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from core.video import probe_video
from datasets.layout import DataLayout
from datasets.readers import LayoutProblem
from preprocessing.extract_crops import (
    crops_of,
    fake_offset,
    group_by_original,
    probe_original,
    same_frame_size_as_version_1,
    write_png_atomic,
)
from preprocessing.generate_landmarks import read_rgb
from preprocessing.runner import (
    ItemError,
    ItemResult,
    Stage,
    WorkItem,
    layout_of,
    run_cli,
    run_stage,
    stage_parser,
)

STAGE_NAME = "generate_diffs"
# 2: a fake of another size than its original's that is not a centre crop of it is left out
VERSION = 2
# what stage 4 does with such a fake
LEFT_OUT = "no diff is made, as stage 2 cut no crop of it"


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
    """Write the diff of every fake crop that has a matching original crop; returns the files.

    Raises ItemError when either video has no crops or no crop name is shared."""
    originals = set(crops_of(layout, original_id))
    pairs = [name for name in crops_of(layout, fake_id) if name in originals]
    if not pairs:
        raise ItemError(f"no crop of {layout.crops_dir(fake_id)} has a namesake in {layout.crops_dir(original_id)}: "
                        f"rerun extract_crops (it cuts both with the original's boxes)")
    written: list[Path] = []
    errors: list[str] = []
    for frame, face in pairs:
        try:
            diff = ssim_diff(read_rgb(layout.crop_path(original_id, frame, face)),
                             read_rgb(layout.crop_path(fake_id, frame, face)))
            target = layout.diff_path(fake_id, frame, face)
            write_png_atomic(target, diff, rgb=False, root=layout.diffs_root)
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


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> ItemResult:
    written: list[Path] = []
    errors: list[str] = []
    warnings: list[str] = []
    original_info = probe_original(item.videos[0])
    for fake in item.videos[1:]:
        try:
            _, problem = fake_offset(fake, probe_video(fake.path), original_info, LEFT_OUT)
            if problem:
                warnings.append(problem)
                continue
            written += fake_diffs(layout, item.key, fake.video_id)
        except Exception as exc:
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    if not written:
        raise ItemError(f"none of the fakes of {item.key} can be compared with it: {'; '.join(warnings)}")
    return ItemResult(written, warnings)


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [layout.crops_dir(video.video_id) for video in item.videos]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.diffs_dir(fake.video_id) for fake in item.videos[1:]]


def _output_dirs(layout: DataLayout) -> list[Path]:
    return [layout.diffs_root]


STAGE = Stage(STAGE_NAME, _list_items, _process, inputs=_inputs, item_outputs=_item_outputs,
              output_dirs=_output_dirs, version=VERSION, unchanged_since=same_frame_size_as_version_1)


def generate_diffs(data_root, workers: int | None = None, shard=None, progress: bool = True):
    """Stage 4 over DATA_ROOT; returns the StageSummary."""
    return run_stage(STAGE, data_root, {}, workers, shard, progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    return run_cli(lambda: generate_diffs(layout_of(args), args.workers, args.shard, not args.no_progress))


if __name__ == "__main__":
    raise SystemExit(main())
