"""Face crops from folds.csv for the classifier: fold split, per-epoch fake subsampling, cutouts,
augmentations, and replacement of broken crops.

Every random choice of a sample (fake subsampling, cutout, augmentation) is derived from
``(seed, epoch, index)``, so the data of a run is the same whatever the number of loader workers and
after a resume.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from core.input_spec import InputSpec
from datasets.layout import FOLDS_COLUMNS, DataLayout, parse_crop_name
from training.datasets.fake_sources import FAKE_SOURCES
from training.transforms.augmentations import (
    create_train_transforms,
    create_val_transforms,
    image_to_uint8_tensor,
)
from training.transforms.cutouts import CutoutInputs, apply_hardcore, change_padding
from training.transforms.self_blend import SelfBlendParams, self_blend

log = logging.getLogger(__name__)

VAL_FRAME_STEP = 20  # validation uses every 20th frame unless --full-val
MAX_REPLACEMENTS = 20  # a sample whose crop is broken is replaced by up to this many others


class FoldsError(Exception):
    """folds.csv cannot give a train/validation split; the message says why and how to fix it."""


class SampleError(Exception):
    """One crop cannot be used (missing or unreadable); the dataset replaces the sample."""


def read_folds(data_root: str | os.PathLike) -> pd.DataFrame:
    layout = DataLayout(data_root)
    path = layout.folds_csv
    if not path.is_file():
        raise FoldsError(f"{path} does not exist; run ./preprocess_data.sh {layout.root} first "
                         f"(its last stage writes folds.csv)")
    try:
        frame = pd.read_csv(path, dtype={"video": str, "file": str, "original": str})
    except (OSError, ValueError) as exc:
        raise FoldsError(f"{path} cannot be read as CSV ({exc}); rerun the folds stage of "
                         f"./preprocess_data.sh") from exc
    missing = [c for c in FOLDS_COLUMNS if c not in frame.columns]
    if missing:
        raise FoldsError(f"{path} lacks the columns {missing}; expected {list(FOLDS_COLUMNS)} "
                         f"(rerun the folds stage of ./preprocess_data.sh)")
    return frame


def split_folds(folds: pd.DataFrame, fold: int, full_val: bool = False,
                source: str = "folds.csv", fakes: str = "real",
                test_fold: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows for training (folds other than ``fold`` and ``test_fold``) and validation (``fold``, every
    20th frame unless ``full_val``). ``test_fold``: a fold kept out of both, for a test the checkpoint
    selection never saw. ``fakes``: the fake source (``training.datasets.fake_sources``); with one that needs
    no data fakes (``self_blended``) reals alone are enough (the fakes are made from them)."""
    source_of_fakes = FAKE_SOURCES.get(fakes)
    available = sorted(int(f) for f in folds["fold"].unique())
    if fold not in available:
        raise FoldsError(f"{source} has no rows with fold {fold}; available folds: {available}. "
                         f"Pass one of them with --fold")
    if test_fold is not None:
        if test_fold == fold:
            raise FoldsError(f"--test-fold {test_fold} is the validation fold (--fold {fold}); the test fold "
                             f"must be another one (available folds: {available})")
        if test_fold not in available:
            raise FoldsError(f"{source} has no rows with fold {test_fold}; available folds: {available}. "
                             f"Pass one of them with --test-fold")
        folds = folds[folds["fold"] != test_fold]
    train = folds[folds["fold"] != fold].reset_index(drop=True)
    val = folds[folds["fold"] == fold]
    if not full_val:
        val = val[val["frame"] % VAL_FRAME_STEP == 0]
    val = val.reset_index(drop=True)
    if train.empty:
        raise FoldsError(f"{source}: every row is in fold {fold}"
                         + (f" or the test fold {test_fold}" if test_fold is not None else "")
                         + ", nothing is left to train on; "
                         "make more folds in preprocessing or pick another fold")
    if val.empty:
        raise FoldsError(f"{source}: fold {fold} has no frame that is a multiple of {VAL_FRAME_STEP}; "
                         f"pass --full-val to validate on all its frames")
    for name, rows in (("training", train), ("validation", val)):
        labels = set(rows["label"].astype(int))
        if not source_of_fakes.needs_data_fakes and 0 in labels:
            continue
        if labels != {0, 1}:
            have = "only FAKE" if labels == {1} else "only REAL"
            raise FoldsError(f"{source}: the {name} rows for fold {fold} have {have} crops; "
                             f"both classes are needed (pick another fold or add videos)")
    return train, val


def identity_groups_of(data_root: str | os.PathLike, rows: pd.DataFrame) -> dict[str, str]:
    """Video -> its identity group, as the dataset's reader gives it (the groups the folds keep together);
    a video the reader does not list (or puts in none) is in its original's group, else its own."""
    entries, _ = DataLayout(data_root).scan()
    group_of = {e.video_id: e.identity_group for e in entries if e.identity_group is not None}
    pairs = rows[["video", "original"]].drop_duplicates()
    return {video: group_of.get(video) or group_of.get(original) or str(original)
            for video, original in zip(pairs["video"], pairs["original"])}


def identity_group_subset(rows: pd.DataFrame, n_videos: int, seed: int,
                          group_of: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """The rows of at most ``n_videos`` training videos, taken whole identity groups at a time (a face is
    all in or all out): the groups in an order drawn from ``seed``, each taken while it still fits. All
    rows when they hold no more than ``n_videos`` videos. Returns the rows (in their order) and the groups
    taken."""
    videos = sorted(set(rows["video"]))
    if len(videos) <= n_videos:
        return rows, sorted({group_of[v] for v in videos})
    members: dict[str, list[str]] = {}
    for video in videos:
        members.setdefault(group_of[video], []).append(video)
    order = sorted(members)
    np.random.default_rng(seed).shuffle(order)
    chosen, count = [], 0
    for group in order:
        if count + len(members[group]) <= n_videos:
            chosen.append(group)
            count += len(members[group])
    if not chosen:
        smallest = min(len(m) for m in members.values())
        raise FoldsError(f"train_videos={n_videos} is smaller than the smallest identity group of the training "
                         f"folds ({smallest} videos); pass at least {smallest}")
    keep = {v for g in chosen for v in members[g]}
    return rows[rows["video"].isin(keep)].reset_index(drop=True), sorted(chosen)


@dataclass
class Sample:
    """A crop after cutouts, before the albumentations pipeline."""

    image: np.ndarray  # RGB uint8
    label: float  # 0 REAL, 1 FAKE (before smoothing)
    video: str
    frame: int
    face: int
    cutout: str
    inputs: CutoutInputs


class DeepFakeClassifierDataset(Dataset):
    """``mode='train'``: reals plus as many fakes (drawn per epoch as the fake source ``fakes`` says:
    the data's fake crops, self-blended copies of its real crops, or half of each; see
    ``training.datasets.fake_sources``), cutouts (not on self-blended samples: their blend is the
    signal), train transforms, smoothed labels. ``mode='val'``: every row, resize + pad only; when the
    rows hold no fake and the source self-blends, every real row also comes as a self-blended fake
    (drawn from the seed and the row, the same every epoch). Images come
    out at the model's ``input_spec`` (size, resize rounding), uint8."""

    def __init__(self, data_root: str | os.PathLike, rows: pd.DataFrame, mode: str, input_spec: InputSpec,
                 seed: int = 0, hardcore: bool = True, padding_part: int = 3,
                 label_smoothing: float = 0.01, augment: bool = True, fakes: str = "real"):
        if mode not in ("train", "val"):
            raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
        if input_spec.is_clip:
            raise ValueError(f"this dataset gives single face crops, the model takes clips of "
                             f"{input_spec.frames_per_clip} frames; train an image family (e.g. classifier2d) here")
        self.fakes = fakes
        self.fake_source = FAKE_SOURCES.get(fakes)
        self.layout = DataLayout(data_root)
        self.mode = mode
        self.input_spec = input_spec
        self.size = input_spec.size_px
        self.seed = int(seed)
        self.hardcore = hardcore and mode == "train"
        self.padding_part = int(padding_part)
        self.label_smoothing = float(label_smoothing)
        self.rows = self._parse_rows(rows)
        if mode == "train" and augment:
            self.transforms = create_train_transforms(input_spec, seed=self.seed)
        else:
            self.transforms = create_val_transforms(input_spec)
        self.epoch = 0
        self.items: list[tuple] = []
        self.set_epoch(0)

    @staticmethod
    def _parse_rows(rows: pd.DataFrame) -> list[tuple]:
        parsed = []
        for video, file, label, original, frame in zip(rows["video"], rows["file"], rows["label"],
                                                       rows["original"], rows["frame"]):
            name = parse_crop_name(Path(str(file)).name)
            face = name[1] if name else 0
            original = str(original) if isinstance(original, str) and original else str(video)
            parsed.append((str(video), int(frame), int(face), float(label), original, False))
        return parsed

    @staticmethod
    def self_blended(reals: list[tuple]) -> list[tuple]:
        """Fake items made from real ones: the same crop, label 1, flagged to be self-blended."""
        return [(video, frame, face, 1.0, original, True) for video, frame, face, _, original, _ in reals]

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's items: every real and as many fakes, drawn with (seed, epoch)."""
        self.epoch = int(epoch)
        reals = [r for r in self.rows if r[3] < 0.5]
        fakes = [r for r in self.rows if r[3] >= 0.5]
        if self.mode != "train":
            self.items = list(self.rows)
            if not fakes and self.fake_source.self_blends:
                self.items += self.self_blended(reals)
            return
        rng = np.random.default_rng([self.seed, self.epoch, 0])
        n_data_fakes = self.fake_source.data_fakes(len(reals))
        if len(fakes) > n_data_fakes:
            chosen = np.sort(rng.choice(len(fakes), size=n_data_fakes, replace=False))
            fakes = [fakes[i] for i in chosen]
        if self.fake_source.self_blends:
            n_blended = len(reals) - len(fakes)
            chosen = np.sort(rng.choice(len(reals), size=max(n_blended, 0), replace=False))
            fakes = fakes + self.self_blended([reals[i] for i in chosen])
        self.items = reals + fakes

    def __len__(self) -> int:
        return len(self.items)

    def sample_rng(self, index: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index), int(attempt), 1])

    def read_sample(self, index: int, rng: np.random.Generator, hardcore: bool | None = None) -> Sample:
        """The crop of item ``index`` with its cutout applied (raises SampleError when unusable)."""
        video, frame, face, label, original, blended = self.items[index]
        path = self.layout.crop_path(video, frame, face)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            reason = "is missing" if not path.is_file() else "cannot be decoded"
            raise SampleError(f"crop {path} {reason}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if blended:
            landmarks68 = _load_points(self.layout.landmarks68_path(original, frame, face), 68)
            if landmarks68 is None:
                raise SampleError(f"crop {path} has no usable 68-point landmarks "
                                  f"({self.layout.landmarks68_path(original, frame, face)}) to self-blend it")
            image, _ = self_blend(image, landmarks68, SelfBlendParams.draw(rng), rng)
            if self.mode == "train" and self.padding_part > 3:
                image = change_padding(image, self.padding_part)
            return Sample(image, 1.0, video, frame, face, "self_blend", CutoutInputs(landmarks68=landmarks68,
                                                                                     is_fake=True))
        hardcore = self.hardcore if hardcore is None else hardcore
        inputs = CutoutInputs(is_fake=label >= 0.5)
        cutout = "none"
        if hardcore:
            inputs = self.cutout_inputs(video, original, frame, face, label, image.shape)
            image, cutout = apply_hardcore(image, inputs, rng)
        if self.mode == "train" and self.padding_part > 3:
            image = change_padding(image, self.padding_part)
        return Sample(image, label, video, frame, face, cutout, inputs)

    def cutout_inputs(self, video: str, original: str, frame: int, face: int, label: float,
                      shape) -> CutoutInputs:
        """The stored landmarks (the original's, for fakes too) and, for fakes, the SSIM diff; each
        is None when absent or unusable."""
        landmarks5 = _load_points(self.layout.landmarks_path(original, frame, face), 5)
        landmarks68 = _load_points(self.layout.landmarks68_path(original, frame, face), 68)
        diff = None
        if label >= 0.5:
            diff_path = self.layout.diff_path(video, frame, face)
            if diff_path.is_file():
                diff = cv2.imread(str(diff_path), cv2.IMREAD_GRAYSCALE)
                if diff is not None and diff.shape != tuple(shape[:2]):
                    diff = None
        return CutoutInputs(landmarks5, landmarks68, diff, label >= 0.5)

    def __getitem__(self, index: int) -> dict:
        for attempt in range(MAX_REPLACEMENTS + 1):
            current = index if attempt == 0 else int(self.sample_rng(index, attempt).integers(len(self.items)))
            rng = self.sample_rng(current)
            try:
                sample = self.read_sample(current, rng)
            except SampleError as exc:
                log.warning("%s; using another sample instead", exc)
                continue
            if self.mode == "train":
                self.transforms.set_random_seed(int(rng.integers(2 ** 31)))
            image = self.transforms(image=sample.image)["image"]
            label = sample.label
            if self.mode == "train":
                label = float(np.clip(label, self.label_smoothing, 1 - self.label_smoothing))
            return {"image": image_to_uint8_tensor(image), "label": torch.tensor(label, dtype=torch.float32),
                    "video": sample.video, "index": current}
        raise RuntimeError(f"{MAX_REPLACEMENTS + 1} crops in a row around item {index} could not be read "
                           f"from {self.layout.crops_root}; the crops folder is damaged, rerun "
                           f"./preprocess_data.sh {self.layout.root}")


def _load_points(path: Path, count: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        points = np.load(path).astype(np.float32)
    except (OSError, ValueError) as exc:
        log.warning("landmarks %s cannot be read (%s); the sample gets no landmark cutout", path, exc)
        return None
    if points.shape != (count, 2) or not np.isfinite(points).all():
        log.warning("landmarks %s have shape %s, expected (%d, 2); ignored", path, points.shape, count)
        return None
    return points
