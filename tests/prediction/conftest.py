"""Fixtures of the prediction tests: small real checkpoints and a folder of real good and bad inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from datasets.layout import DataLayout
from models.checkpoints import load_model, save_checkpoint
from models.classifier2d import DeepFakeClassifier

ENCODER = "tf_efficientnet_lite0"
INPUT_SIZE_PX = 96  # small input keeps the CPU tests fast
FRAMES_PER_VIDEO = 4
WINNER_NAME = f"final_111_DeepFakeClassifier_{ENCODER}_0_23"
BAD_VIDEOS = {"corrupt.mp4": "unreadable", "zero_frames.mp4": "unreadable", "faceless.mp4": "no_face",
              "text_named.mp4": "unreadable"}


def _classifier(seed: int) -> DeepFakeClassifier:
    torch.manual_seed(seed)
    model = DeepFakeClassifier(ENCODER)
    with torch.no_grad():
        # a random head gives every face a logit near 1.7 +- 0.15; stretch it around 0 so that faces
        # get clearly different scores (the parity checks then compare distinct numbers)
        model.fc.weight.mul_(10.0)
        model.fc.bias.copy_(10.0 * (model.fc.bias - 1.7))
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def project_checkpoint(checkpoint_dir) -> Path:
    """This project's format (weights + config), written by the training code's saver."""
    path = checkpoint_dir / f"demo_{ENCODER}_0_best"
    save_checkpoint(path, _classifier(0), config={"encoder": ENCODER, "size": INPUT_SIZE_PX})
    return path


@pytest.fixture(scope="session")
def winner_checkpoint(checkpoint_dir, project_checkpoint) -> Path:
    """The same weights in the DFDC winner's format: DDP ``module.`` keys, no config, encoder in the name."""
    state = torch.load(project_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    path = checkpoint_dir / WINNER_NAME
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 23}, path)
    return path


@pytest.fixture(scope="session")
def two_person_dir(tmp_path_factory) -> Path:
    """One two-person scene: both real, the left person swapped, the right person swapped."""
    from sample_data.make_sample_dataset import TWO_PERSON_NAME, generate_two_person_videos

    root = tmp_path_factory.mktemp("two_person")
    videos = generate_two_person_videos(root, 1, seconds=2.0, fps=10, size=(640, 360), seed=0, progress=False)
    assert [v.label for v in videos] == ["REAL", "FAKE", "FAKE"]
    return root / TWO_PERSON_NAME


@pytest.fixture(scope="session")
def loaded_model(project_checkpoint):
    return load_model(project_checkpoint)


@pytest.fixture(scope="session")
def test_videos(sample_root) -> Path:
    """The generated test videos (REAL and FAKE, with metadata.json). Read-only."""
    folder = DataLayout(sample_root).test_videos_dir
    assert sorted(p.name for p in folder.glob("*.mp4")), f"no test videos in {folder}"
    return folder


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264",
                pix_fmt: str = "yuv420p") -> Path:
    """A real video file of RGB ``frames``; the container follows the extension (any case)."""
    formats = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm",
               ".flv": "flv"}
    with av.open(str(path), "w", format=formats[path.suffix.lower()]) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2] if frames else (120, 160)
        stream.pix_fmt = pix_fmt
        # one encoder thread: x264's frame threads make the bytes (and decoded pixels) differ between runs
        stream.codec_context.thread_count = 1
        if not frames:
            container.start_encoding()  # the header and an empty track, no frame
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory, test_videos) -> dict[str, Path]:
    """Real bad files: a truncated mp4, a zero-frame mp4, a face-less mp4, text named .mp4, and non-videos."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    good = sorted(test_videos.glob("*.mp4"))[0]
    data = good.read_bytes()
    (folder / "corrupt.mp4").write_bytes(data[: len(data) // 3])
    write_video(folder / "zero_frames.mp4", [])
    y, x = np.mgrid[0:120, 0:160]
    gradients = [np.stack([(x + 9 * i) % 256, (2 * y) % 256, np.full_like(x, 40 + 12 * i)], -1).astype(np.uint8)
                 for i in range(12)]
    write_video(folder / "faceless.mp4", gradients)
    (folder / "text_named.mp4").write_text("this is not a video\n")
    (folder / "notes.txt").write_text("not a video\n")
    import cv2

    cv2.imwrite(str(folder / "poster.jpg"), np.full((32, 32, 3), 128, dtype=np.uint8))
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="session")
def generator_detector(tmp_path_factory) -> Path:
    """A Lite0 classifier trained for 60 steps on generated videos (the sample generator's face swaps and
    self-blends, every 2nd frame cropped): a real model that tells the generator's fakes from its reals."""
    from preprocessing.pipeline import preprocess
    from sample_data.make_sample_dataset import generate_sample_dataset
    from training.pipelines.train_classifier import TrainOptions, train

    out = tmp_path_factory.mktemp("generator_detector")
    root = out / "data"
    # 320x360: the size of one person's half of the two-person videos
    generate_sample_dataset(root, parts=1, reals_per_part=4, fakes_per_real=2, seconds=2.0, fps=10, size=(320, 360),
                            seed=7, test_videos=0, progress=False)
    preprocess(root, workers=1, progress=False, every=2)
    train(TrainOptions(
        data_dir=str(root), seed=111, fold=0, progress=False, output_dir=str(out / "weights"),
        log_dir=str(out / "logs"),
        overrides=["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", f"size={INPUT_SIZE_PX}",
                   "batch_size=16", "workers=0", "drop_path_rate=0", "epochs=6", "batches_per_epoch=10",
                   "val_every=6", "augment=false", "tensorboard_images=0", 'optimizer={"type": "Adam", "lr": 0.001}',
                   "schedule.type=constant"], no_hardcore=True))
    return next((out / "weights").glob("*_last"))
