"""What a model trains on, chosen by what it takes: a registry keyed by the input spec's layout
(``core.input_spec.LAYOUTS``), which the config's model family gives (``models.registry.input_spec``).

* ``NCHW`` (image families, ``classifier2d``): face crops from folds.csv (``DeepFakeClassifierDataset``);
* ``NCTHW`` (clip families, ``video_resnet``, ``inflated3d``): chunks of face-track clips
  (``ClipDataset``), 3D cutmix on each batch.

The pipeline (``training/pipelines/train_classifier.py``) and the calibration's validation loader ask
``training_data(spec)`` and nothing else branches on the family. Both split folds.csv the same way
(``split_folds``: ``--fold`` validates, ``--test-fold`` is left out).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from core.input_spec import InputSpec
from core.registry import Registry
from datasets.layout import DataLayout
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds, split_folds
from training.datasets.clip_dataset import ClipDataset
from training.transforms.augmentations import tensor_to_image
from training.transforms.clip_augmentations import DEFAULT_CROP_SHARE, clip_preview
from training.transforms.cutmix3d import CutMix3d

# (clips uint8, labels, rng) -> (clips, labels): a change of a whole training batch (cutmix)
BatchMix = Callable[[torch.Tensor, torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainingData:
    """``noun``: what one sample is (logs); ``dataset(data_root, rows, mode, spec, config, seed)``: the
    training (``mode='train'``) or validation set of ``rows``; ``full_val_always``: validation takes every
    row of the fold (clips), not every 20th frame unless --full-val (crops); ``batch_mix(config)``: the
    change of each training batch, or None; ``preview(sample)``: one sample as an RGB image (TensorBoard);
    ``recorded(train_set)``: the config values the data fixes (the clips' side), written into the checkpoint."""

    description: str
    noun: str
    dataset: Callable[..., Dataset]
    full_val_always: bool
    batch_mix: Callable[[Mapping[str, Any]], BatchMix | None]
    preview: Callable[[torch.Tensor], np.ndarray]
    # the config values the training set fixes, recorded with the run ({"clip_size": ...} for clips)
    recorded: Callable[[Dataset], dict[str, Any]] = lambda dataset: {}  # crops: nothing

    def split(self, data_root: str | os.PathLike, fold: int, full_val: bool, fakes: str,
              test_fold: int | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
        """folds.csv's rows to train and to validate on, and the file they come from."""
        source = str(DataLayout(data_root).folds_csv)
        train, val = split_folds(read_folds(data_root), fold, full_val or self.full_val_always, source, fakes=fakes,
                                 test_fold=test_fold)
        return train, val, source


TRAINING_DATA: Registry[TrainingData] = Registry("training data")


def training_data(spec: InputSpec) -> TrainingData:
    """What a model with input ``spec`` trains on."""
    return TRAINING_DATA.get(spec.layout)


def crop_dataset(data_root, rows, mode: str, spec: InputSpec, config: Mapping[str, Any], seed: int) -> Dataset:
    if mode == "val":
        return DeepFakeClassifierDataset(data_root, rows, "val", spec, seed=seed, fakes=config.get("fakes", "real"))
    return DeepFakeClassifierDataset(data_root, rows, "train", spec, seed=seed, hardcore=config["hardcore"],
                                     padding_part=config["padding_part"], label_smoothing=config["label_smoothing"],
                                     augment=config["augment"], fakes=config["fakes"])


def clip_dataset(data_root, rows, mode: str, spec: InputSpec, config: Mapping[str, Any], seed: int) -> Dataset:
    return ClipDataset(data_root, rows, mode, spec, seed=seed, label_smoothing=config.get("label_smoothing", 0.01),
                       augment=config.get("augment", True), fakes=config.get("fakes", "real"),
                       crop_share=config.get("clip_crop") or DEFAULT_CROP_SHARE)


def no_batch_mix(config: Mapping[str, Any]) -> None:
    return None


def clip_cutmix(config: Mapping[str, Any]) -> BatchMix | None:
    """The config's 3D cutmix (``cutmix``: share of clips mixed, ``cutmix_alpha``), None when off."""
    probability = float(config.get("cutmix") or 0.0)
    if probability <= 0:
        return None
    cutmix = CutMix3d(probability, float(config.get("cutmix_alpha") or 1.0))

    def mix(clips: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator):
        return cutmix(clips, labels, rng)[:2]

    return mix


TRAINING_DATA.register("NCHW", TrainingData("face crops from folds.csv", "crops", crop_dataset, False, no_batch_mix,
                                            tensor_to_image))
def clip_side(dataset: ClipDataset) -> dict[str, Any]:
    """The side of the training clips (the clips stage's ``--clip-size``): prediction cuts its chunks at it."""
    return {"clip_size": dataset.clip_side_px} if dataset.clip_side_px is not None else {}


TRAINING_DATA.register("NCTHW", TrainingData("chunks of face-track clips (clips/), labelled by folds.csv", "clips",
                                             clip_dataset, True, clip_cutmix, clip_preview, clip_side))
