"""Face-track clips for the 3D model families: chunks of ``frames_per_clip`` frames of the clips the clip
stage wrote (``clips/<video>/<person>_<chunk>.mp4``, listed by each video's ``clips.json``).

The videos, their labels and their folds come from folds.csv, split exactly as the crops of the 2D
models are (``split_folds``: ``--fold`` validates, ``--test-fold`` is left out of both); a clip is
labelled as its video. A training epoch takes every real clip and as many fake clips, drawn per epoch
as the fake source says (``training.datasets.fake_sources``; the data's fakes: a source that
self-blends crops has no clip form and is refused). A chunk starts at a random frame of its clip in
training and at the centred one in validation; the augmentation parameters are drawn once per chunk
and applied to all its frames (``training.transforms.clip_augmentations``).

Every random choice of a sample (fake subsampling, chunk start, augmentation) is derived from
``(seed, epoch, index)``, so the data of a run is the same whatever the number of loader workers and
after a resume.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from core.clips import ClipReadError, read_clip, read_clips_index
from core.input_spec import InputSpec
from datasets.layout import DataLayout
from training.datasets.classifier_dataset import MAX_REPLACEMENTS, FoldsError, SampleError
from training.datasets.fake_sources import FAKE_SOURCES
from training.transforms.clip_augmentations import (
    DEFAULT_CROP_SHARE,
    clip_to_uint8_tensor,
    create_clip_train_transforms,
    create_clip_val_transforms,
    transform_clip,
)

log = logging.getLogger(__name__)


class ClipsError(FoldsError):
    """DATA_ROOT has no clips to train on; the message says how to make them."""


@dataclass(frozen=True)
class ClipItem:
    """One clip of one video: ``clip`` is its name (``<person>_<chunk>``), ``frames`` its frame count."""

    video: str
    clip: str
    label: float  # 0 REAL, 1 FAKE (before smoothing)
    original: str
    frames: int
    side_px: int | None = None  # the clip's side (its clips.json's size_px: the clips stage's --clip-size)


def chunk_span(spec: InputSpec) -> int:
    """Frames of a clip one chunk covers: ``frames_per_clip`` frames ``frame_step`` apart."""
    return (spec.frames_per_clip - 1) * spec.frame_step + 1


def video_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per video of ``rows`` (folds.csv rows): its label and original, videos sorted."""
    videos = rows.groupby("video", sort=True).agg(label=("label", "first"), original=("original", "first"))
    return videos.reset_index()


def list_clip_items(layout: DataLayout, rows: pd.DataFrame, span: int) -> list[ClipItem]:
    """The clips of the videos of ``rows`` at least ``span`` frames long, in the order of the videos and
    of their clips.json. ClipsError when DATA_ROOT has no clips folder."""
    if not layout.clips_root.is_dir():
        raise ClipsError(f"{layout.clips_root} does not exist: the 3D model families train on face-track clips; "
                         f"make them with ./preprocess_data.sh {layout.root} --clips (or python -m "
                         f"preprocessing.extract_clips {layout.root})")
    items: list[ClipItem] = []
    no_index, unreadable, short = [], [], 0
    for video, label, original in zip(*(video_labels(rows)[c] for c in ("video", "label", "original"))):
        index_path = layout.clips_index_path(str(video))
        if not index_path.is_file():
            no_index.append(str(video))
            continue
        try:
            index = read_clips_index(index_path)
        except ValueError as exc:
            unreadable.append(str(exc))
            continue
        original = str(original) if isinstance(original, str) and original else str(video)
        for record in index["clips"]:
            frames = len(record.get("frames") or [])
            if frames < span:
                short += 1
                continue
            items.append(ClipItem(str(video), str(record["file"]).removesuffix(".mp4"), float(label), original,
                                  frames, index.get("size_px")))
    if no_index:
        log.warning("%d of the fold's videos have no clips.json in %s (e.g. %s): left out; run python -m "
                    "preprocessing.extract_clips %s", len(no_index), layout.clips_root, no_index[:3], layout.root)
    for problem in unreadable:
        log.warning("%s; its video is left out", problem)
    if short:
        log.warning("%d clips are shorter than a chunk (%d frames): left out", short, span)
    return items


class ClipDataset(Dataset):
    """``mode='train'``: every real clip plus as many fake clips drawn per epoch, one chunk of each at a
    random start, the clip train transforms, smoothed labels. ``mode='val'``: every clip, its centred
    chunk, the centred crop. Samples: ``{"image": uint8 (3, T, H, W), "label", "video", "index"}`` at the
    model's input spec (``frames_per_clip`` frames ``frame_step`` apart, ``size_px`` square)."""

    def __init__(self, data_root: str | os.PathLike, rows: pd.DataFrame, mode: str, input_spec: InputSpec,
                 seed: int = 0, label_smoothing: float = 0.01, augment: bool = True, fakes: str = "real",
                 crop_share: float = DEFAULT_CROP_SHARE):
        if mode not in ("train", "val"):
            raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
        if not input_spec.is_clip:
            raise ValueError("this dataset gives clips, the model takes single images; train a clip family "
                             "(video_resnet, inflated3d) here")
        self.fake_source = FAKE_SOURCES.get(fakes)
        if self.fake_source.self_blends:
            raise ClipsError(f"fake source {fakes!r} self-blends single crops, which has no clip form; the 3D "
                             f"families train on the data's fake clips: set \"fakes\": \"real\"")
        self.layout = DataLayout(data_root)
        self.mode, self.input_spec, self.seed = mode, input_spec, int(seed)
        self.label_smoothing = float(label_smoothing)
        self.span = chunk_span(input_spec)
        self.clips = list_clip_items(self.layout, rows, self.span)
        if not self.clips:
            raise ClipsError(f"{self.layout.clips_root}: none of the {rows['video'].nunique()} {mode} videos has a "
                             f"clip of at least {self.span} frames; make clips (./preprocess_data.sh "
                             f"{self.layout.root} --clips) or take shorter chunks (clip_frames, clip_frame_step)")
        sides = sorted({clip.side_px for clip in self.clips if clip.side_px is not None})
        if len(sides) > 1:
            raise ClipsError(f"{self.layout.clips_root}: the {mode} clips have several sides ({sides} px); remake them "
                             f"with one --clip-size (./preprocess_data.sh {self.layout.root} --clips --clip-size N)")
        self.clip_side_px: int | None = sides[0] if sides else None  # recorded in the checkpoint's config
        if mode == "train" and augment:
            self.transforms = create_clip_train_transforms(input_spec, crop_share, seed=self.seed)
        else:
            self.transforms = create_clip_val_transforms(input_spec, crop_share)
        self.epoch = 0
        self.items: list[ClipItem] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's clips: every real and as many fakes (as the fake source allows), drawn with
        (seed, epoch)."""
        self.epoch = int(epoch)
        if self.mode != "train":
            self.items = list(self.clips)
            return
        reals = [c for c in self.clips if c.label < 0.5]
        fakes = [c for c in self.clips if c.label >= 0.5]
        rng = np.random.default_rng([self.seed, self.epoch, 0])
        n_fakes = self.fake_source.data_fakes(len(reals))
        if len(fakes) > n_fakes:
            fakes = [fakes[i] for i in np.sort(rng.choice(len(fakes), size=n_fakes, replace=False))]
        self.items = reals + fakes

    def __len__(self) -> int:
        return len(self.items)

    def sample_rng(self, index: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index), int(attempt), 2])

    def chunk_start(self, item: ClipItem, rng: np.random.Generator) -> int:
        """The chunk's first frame in its clip: random in training, centred in validation."""
        room = item.frames - self.span
        return int(rng.integers(0, room + 1)) if self.mode == "train" else room // 2

    def read_chunk(self, item: ClipItem, rng: np.random.Generator) -> np.ndarray:
        """The ``(T, H, W, 3)`` frames of the item's chunk (SampleError when its clip cannot give them)."""
        path = self.layout.clip_path(item.video, item.clip)
        start = self.chunk_start(item, rng)
        try:
            frames = read_clip(path, stop=start + self.span)
        except (ClipReadError, FileNotFoundError) as exc:
            raise SampleError(str(exc)) from None
        if len(frames) < start + self.span:
            raise SampleError(f"clip {path} holds {len(frames)} frames, its clips.json lists {item.frames}; rerun "
                              f"python -m preprocessing.extract_clips {self.layout.root}")
        return frames[start:start + self.span:self.input_spec.frame_step]

    def __getitem__(self, index: int) -> dict:
        for attempt in range(MAX_REPLACEMENTS + 1):
            current = index if attempt == 0 else int(self.sample_rng(index, attempt).integers(len(self.items)))
            rng = self.sample_rng(current)
            item = self.items[current]
            try:
                frames = self.read_chunk(item, rng)
            except SampleError as exc:
                log.warning("%s; using another sample instead", exc)
                continue
            label = item.label
            if self.mode == "train":
                self.transforms.set_random_seed(int(rng.integers(2 ** 31)))
                label = float(np.clip(label, self.label_smoothing, 1 - self.label_smoothing))
            clip = transform_clip(self.transforms, frames)
            return {"image": clip_to_uint8_tensor(clip), "label": torch.tensor(label, dtype=torch.float32),
                    "video": item.video, "index": current}
        raise RuntimeError(f"{MAX_REPLACEMENTS + 1} clips in a row around item {index} could not be read from "
                           f"{self.layout.clips_root}; the clips folder is damaged, rerun python -m "
                           f"preprocessing.extract_clips {self.layout.root}")
