"""Training of the clip (3D) families on real FF++ video: the clip dataset, one augmentation draw per
chunk, 3D cutmix, the schedules, a short training, resume and the checkpoint's family and input spec.

The data: 8 FF++ videos of ``../shared/data/ffpp_train`` (two identity groups) cut to their first 3 s
and run through the real preprocessing stages and the clips stage (3 clips of 24 frames per video)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from core.clips import read_clip
from core.input_spec import InputSpec
from models.checkpoints import load_model, read_checkpoint
from tests.conftest import ffpp_subset_part
from training.datasets.classifier_dataset import FoldsError, read_folds
from training.datasets.clip_dataset import ClipDataset, ClipsError
from training.datasets.training_data import training_data
from training.pipelines.train_classifier import TrainOptions, train, with_recorded
from training.tools.config import ConfigError, load_config
from training.transforms.clip_augmentations import clip_train_transform_list, transform_clip
from training.transforms.cutmix3d import CutMix3d

pytestmark = pytest.mark.real_data

GROUP_A = ["033", "097", "033_097_DF", "097_033_DF"]
GROUP_B = ["055", "147", "055_147_DF", "147_055_DF"]
SECONDS = 3
SPEC = InputSpec(size_px=64, frames_per_clip=4, frame_step=2, layout="NCTHW")
TINY_3D = ["family=inflated3d", "network=Inflated3D", "encoder=tf_efficientnet_lite0", "pretrained=lite0-package",
           "size=64", "clip_frames=4", "clip_frame_step=2", "batch_size=4", "workers=0", "drop_path_rate=0",
           "tensorboard_images=2", "amp=fp32"]


def _cut_video(source: Path, target: Path, frames: int) -> None:
    """The first ``frames`` frames of ``source`` re-encoded (H.264, its size and rate) into ``target``."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream_in = src.streams.video[0]
        stream = dst.add_stream("libx264", rate=stream_in.average_rate, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)


@pytest.fixture(scope="module")
def clip_root(ffpp_train, tmp_path_factory) -> Path:
    """8 FF++ videos, 3 s each, through the five stages and the clips stage (3 clips of 24 frames each)."""
    from preprocessing.pipeline import preprocess

    root = tmp_path_factory.mktemp("ffpp_clips")
    ffpp_subset_part(ffpp_train, root, GROUP_A + GROUP_B,
                     lambda source, target: _cut_video(source, target, SECONDS * 25))
    preprocess(root, workers=2, progress=False, clips={"min_frames": 20, "max_frames": 24, "size": 96})
    return root


def _folds(root: Path) -> tuple[int, int]:
    """(the fold of group A, the fold of group B)."""
    folds = read_folds(root)
    fold_of = folds.groupby("video")["fold"].first()
    return int(fold_of["033"]), int(fold_of["055"])


# ---- augmentations ---------------------------------------------------------------------------------
def _every_transform(transforms: list) -> list:
    flat = []
    for transform in transforms:
        flat += _every_transform(list(transform.transforms)) if isinstance(transform, A.OneOf) else [transform]
    return flat


def test_each_clip_transform_acts_and_draws_its_parameters_once_per_chunk(clip_root):
    frames = read_clip(next((clip_root / "clips" / "033").glob("*.mp4")))
    first, second = frames[0], frames[12]
    assert not np.array_equal(first, second)
    chunk = np.stack([first, second, first, second])  # frames 0 and 2 (1 and 3) must stay equal
    spec = SPEC.replace(size_px=80)
    transforms = _every_transform(clip_train_transform_list(spec))
    names = [type(t).__name__ for t in transforms]
    assert {"RandomCrop", "HorizontalFlip", "ImageCompression", "GaussNoise", "ToGray", "FancyPCA"} <= set(names)
    for transform in transforms:
        transform.p = 1.0
        resized = transform_clip(A.Compose([A.Resize(96, 96)]), chunk)
        for seed in (1, 2):
            out = transform_clip(A.Compose([transform], seed=seed), resized)
            acted = out.shape != resized.shape or not np.array_equal(out, resized)
            assert acted, f"{type(transform).__name__} left the clip as it was (an ignored argument?)"
            assert np.array_equal(out[0], out[2]) and np.array_equal(out[1], out[3]), type(transform).__name__
        if isinstance(transform, A.HorizontalFlip):
            np.testing.assert_array_equal(out, resized[:, :, ::-1])


# ---- the dataset -----------------------------------------------------------------------------------
def test_clip_dataset_follows_the_folds_balances_fakes_and_draws_chunks(clip_root):
    fold_a, fold_b = _folds(clip_root)
    assert fold_a != fold_b
    config = load_config(None, TINY_3D).as_dict()
    data = training_data(SPEC)
    assert data.noun == "clips"
    train_rows, val_rows, _ = data.split(clip_root, fold_b, False, "real", None)
    train_set = data.dataset(clip_root, train_rows, "train", SPEC, config, 3)
    val_set = data.dataset(clip_root, val_rows, "val", SPEC, config, 3)
    assert {c.video for c in train_set.clips} == set(GROUP_A) and {c.video for c in val_set.clips} == set(GROUP_B)
    reals = [c for c in train_set.items if c.label < 0.5]
    assert len(reals) == 2 * 3 and len(train_set) == 2 * len(reals)  # 2 originals x 3 clips, as many fakes
    sample = train_set[0]
    assert sample["image"].shape == (3, 4, 64, 64) and sample["image"].dtype == torch.uint8
    assert sample["label"].item() == pytest.approx(0.01)
    starts = {train_set.chunk_start(train_set.items[0], train_set.sample_rng(0)) for train_set.epoch in range(8)}
    assert len(starts) > 1  # a random start per epoch
    item = val_set.items[0]
    assert val_set.chunk_start(item, val_set.sample_rng(0)) == (item.frames - 7) // 2  # centred: 7 frames span
    assert torch.equal(val_set[0]["image"], val_set[0]["image"])
    # the test fold is left out of both, as for crops: here nothing is left to train on
    with pytest.raises(FoldsError, match="nothing is left to train on"):
        data.split(clip_root, fold_b, False, "real", fold_a)
    with pytest.raises(ClipsError, match="self-blends"):
        ClipDataset(clip_root, train_rows, "train", SPEC, fakes="self_blended")


# ---- 3D cutmix -------------------------------------------------------------------------------------
def test_cutmix_3d_changes_only_its_cuboid_and_mixes_the_label_by_volume(clip_root):
    fold_a, fold_b = _folds(clip_root)
    rows = training_data(SPEC).split(clip_root, fold_b, False, "real", None)[0]
    dataset = ClipDataset(clip_root, rows, "val", SPEC)
    real = next(i for i, c in enumerate(dataset.items) if c.label < 0.5)
    fake = next(i for i, c in enumerate(dataset.items) if c.label >= 0.5)
    clips = torch.stack([dataset[real]["image"], dataset[fake]["image"], dataset[real + 1]["image"]])
    labels = torch.tensor([0.0, 1.0, 0.0])
    mixed_any = False
    for seed in range(6):
        mixed, mixed_labels, cuboids = CutMix3d(probability=1.0)(clips, labels, np.random.default_rng(seed))
        assert torch.equal(clips[1], torch.stack([dataset[real]["image"], dataset[fake]["image"]])[1])  # input kept
        for index, cuboid in enumerate(cuboids):
            changed = (mixed[index] != clips[index]).any(dim=0)  # (T, H, W) voxels that differ
            if cuboid is None:
                assert not changed.any() and mixed_labels[index] == labels[index]
                continue
            inside = torch.zeros_like(changed)
            inside[cuboid.t0:cuboid.t1, cuboid.y0:cuboid.y1, cuboid.x0:cuboid.x1] = True
            assert not changed[~inside].any()  # nothing outside the cuboid moved
            sources = [j for j in range(3) if j != index and torch.equal(
                mixed[index][:, inside], clips[j][:, inside])]
            assert sources, "the cuboid holds another clip's voxels"
            share = inside.sum().item() / inside.numel()
            expected = (1 - share) * labels[index].item() + share * labels[sources[0]].item()
            assert mixed_labels[index].item() == pytest.approx(expected)
            mixed_any |= labels[sources[0]] != labels[index] and 0 < share < 1
    assert mixed_any  # a real clip got a fake's cuboid (or the reverse) at least once: a label in (0, 1)


# ---- schedules -------------------------------------------------------------------------------------
def test_one_cycle_and_plateau_schedules_act_and_serve_2d_configs_too():
    from training.tools.schedulers import create_optimizer, create_scheduler

    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = create_optimizer(params, {"type": "AdamW", "lr": 0.01})
    config = load_config(None, ["schedule.type=one_cycle", "schedule.pct_start=0.25"])  # a classifier2d config
    schedule = create_scheduler(optimizer, config.schedule.as_dict(), 100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.01 / 25) and max(rates) == pytest.approx(0.01, rel=1e-3)
    assert int(np.argmax(rates)) in range(23, 27) and rates[-1] < 0.01 / 25 / 100

    optimizer = create_optimizer(params, {"type": "AdamW", "lr": 0.01})
    config = load_config(None, ["schedule.type=plateau", "schedule.patience=1", "schedule.factor=0.5"])
    schedule = create_scheduler(optimizer, config.schedule.as_dict(), 100)
    for _ in range(10):
        schedule.step()  # the steps change nothing
    assert optimizer.param_groups[0]["lr"] == 0.01
    for loss, lr in ((0.7, 0.01), (0.6, 0.01), (0.65, 0.01), (0.66, 0.005), (0.67, 0.005), (0.68, 0.0025)):
        schedule.after_validation(loss)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    with pytest.raises(ConfigError, match="one_cycle"):
        load_config(None, ["schedule.type=onecycle"])


# ---- training --------------------------------------------------------------------------------------
@pytest.fixture()
def one_thread():
    """One torch thread for the tiny trainings: on a busy machine two threads spin-wait on each other
    (8x the CPU time per step measured with 20 processes on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(root: Path, tmp: Path, fold: int, overrides: list[str], **options):
    return train(TrainOptions(data_dir=str(root), seed=7, fold=fold, progress=False, output_dir=str(tmp / "weights"),
                              log_dir=str(tmp / "logs"), overrides=tuple(TINY_3D + overrides), **options))


def test_short_3d_training_lowers_the_loss_and_its_checkpoint_loads_with_family_and_spec(clip_root, tmp_path,
                                                                                         one_thread):
    fold_a, fold_b = _folds(clip_root)
    result = _train(clip_root, tmp_path, fold_b, ["epochs=10", "batches_per_epoch=3", "augment=false",
                                                  "val_every=10", 'optimizer={"type": "Adam", "lr": 0.001}',
                                                  "schedule.type=constant"])
    losses = result.step_losses
    assert len(losses) == 30
    # the same clips every epoch (no augmentation, no cutmix): the last epochs' mean loss is below the first's
    # (measured once: 0.648 -> 0.613; a fake and its original's clip differ only on the face, so it falls slowly)
    assert np.mean(losses[-9:]) < np.mean(losses[:9]), [round(x, 3) for x in losses]
    best = next((tmp_path / "weights").glob("*_best"))
    data = read_checkpoint(best)
    assert data["family"] == "inflated3d" and data["calibration"]["method"] == "temperature"
    assert data["config"]["clip_size"] == 96  # the clips' side (clip_root's clips stage), for prediction
    loaded = load_model(best)
    assert loaded.family == "inflated3d" and type(loaded.model).__name__ == "InflatedClassifier"
    assert loaded.input_spec == InputSpec(size_px=64, frames_per_clip=4, frame_step=2, layout="NCTHW")
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, data["state_dict"][key]), key
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_a_resumed_3d_run_ends_where_an_uninterrupted_one_does(clip_root, tmp_path, one_thread):
    fold_a, fold_b = _folds(clip_root)
    settings = ["epochs=2", "batches_per_epoch=2", "cutmix=1.0", "schedule.type=one_cycle", "val_every=1",
                'optimizer={"type": "AdamW", "lr": 0.001}']
    whole = _train(clip_root, tmp_path / "whole", fold_b, settings)
    _train(clip_root, tmp_path / "parts", fold_b, settings, stop_after=1)
    last = next((tmp_path / "parts" / "weights").glob("*_last"))
    resumed = _train(clip_root, tmp_path / "parts", fold_b, settings, resume=str(last))
    assert resumed.epochs_run == [1]
    assert resumed.step_losses == whole.step_losses[2:]
    ends = [read_checkpoint(next((tmp_path / run / "weights").glob("*_last")))["state_dict"] for run in ("whole", "parts")]
    for key, value in ends[0].items():
        assert torch.equal(value, ends[1][key]), key


def test_the_clips_side_is_recorded_and_a_config_that_contradicts_it_is_refused():
    config = load_config(None, TINY_3D)
    assert config.clip_size is None and with_recorded(config, {"clip_size": 128}).clip_size == 128
    assert with_recorded(config, {}) is config
    with pytest.raises(ConfigError, match="clip_size=96 but the training data's clips are 128 px"):
        with_recorded(load_config(None, TINY_3D + ["clip_size=96"]), {"clip_size": 128})
