"""Corruptions (prediction.corruptions) on real MP4 files: each one moves the frames the way its name says,
keeps the frame count and frame rate, and the folder copies are redone only when their input changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from prediction.corruptions import (
    CORRUPTIONS,
    FINGERPRINTS_NAME,
    CorruptionError,
    corrupt_folder,
    folder_name,
    write_corrupted_copy,
)
from tests.prediction.conftest import write_video

FPS = 10
N_FRAMES = 8
HEIGHT, WIDTH = 96, 128


def _textured_frames() -> list[np.ndarray]:
    """Mid-grey frames with fine texture and edges (so blur, noise and compression have something to act on)
    that move a little from frame to frame."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3)).astype(np.float32), (3, 3), 0.8)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for i in range(N_FRAMES):
        stripes = 40.0 * (((x + 2 * i) // 4 + y // 6) % 2)[..., None]
        frames.append(np.clip(0.5 * base + stripes + 50, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def source_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("corruption_source") / "clip.mp4", _textured_frames(), fps=FPS)


def _decode(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def high_frequency_energy(frames: list[np.ndarray]) -> float:
    """Mean absolute Laplacian of the grey frames."""
    return float(np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32),
                                               cv2.CV_32F)).mean() for f in frames]))


@pytest.fixture(scope="module")
def copies(source_video, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("corrupted")
    names = ("h264:23", "h264:40", "blur:3", "noise:3", "brightness:+0.25", "brightness:-0.25", "contrast:3",
             "downscale:2")
    paths = {name: out / f"{folder_name(name)}.mp4" for name in names}
    for name, path in paths.items():
        info = write_corrupted_copy(source_video, path, name)
        assert info.bytes == path.stat().st_size and info.frames == N_FRAMES
    return paths


def test_every_copy_keeps_frame_count_and_rate(source_video, copies):
    source_frames, source_fps = _decode(source_video)
    for name, path in copies.items():
        frames, fps = _decode(path)
        assert len(frames) == len(source_frames) == N_FRAMES, name
        assert fps == pytest.approx(source_fps), name
        with av.open(str(path)) as container:
            assert not container.streams.audio, name


def test_corruptions_move_the_frames_the_way_their_names_say(source_video, copies):
    source, _ = _decode(source_video)
    decoded = {name: _decode(path)[0] for name, path in copies.items()}
    energy = {name: high_frequency_energy(frames) for name, frames in decoded.items()}
    source_energy = high_frequency_energy(source)
    mean = {name: float(np.mean(frames)) for name, frames in decoded.items()}

    assert energy["blur:3"] < 0.5 * source_energy
    assert energy["noise:3"] > 1.2 * source_energy
    assert copies["h264:40"].stat().st_size < 0.7 * copies["h264:23"].stat().st_size
    assert energy["h264:40"] < energy["h264:23"]
    assert mean["brightness:+0.25"] > np.mean(source) + 40
    assert mean["brightness:-0.25"] < np.mean(source) - 40
    assert mean["contrast:3"] == pytest.approx(0.6 * np.mean(source), abs=3)
    assert np.std(decoded["contrast:3"]) < 0.7 * np.std(source)
    assert decoded["downscale:2"][0].shape == (HEIGHT // 2, WIDTH // 2, 3)
    # the near-lossless carrier: the H.264 default level stays close to the source
    assert np.abs(np.mean(decoded["h264:23"]) - np.mean(source)) < 2


def test_each_frame_transform_applies_its_parameters():
    """albumentations ignores argument names it does not know: check each transform does what its level says
    on a real frame (not only that it changes it)."""
    frame = _textured_frames()[0]
    seen = set()
    for name, corruption in CORRUPTIONS.items():
        if corruption.make_transform is None:
            assert corruption.kind == "h264"
            continue
        seen.add(corruption.kind)
        out = corruption.make_transform(WIDTH, HEIGHT, 0)(frame)
        assert out.dtype == np.uint8 and out.shape[2] == 3, name
        assert out.shape[:2] == corruption.output_size(WIDTH, HEIGHT)[::-1], name
        if corruption.kind == "blur":
            kernel = int(corruption.description.split("kernel ")[1].split(" px")[0])
            expected = cv2.GaussianBlur(frame, (kernel, kernel), kernel / 6)
            assert np.abs(out.astype(int) - expected).max() <= 1, name
        elif corruption.kind == "noise":
            std = float(corruption.description.split("std ")[1].split(" ")[0]) * 255
            assert np.std(out.astype(float) - frame) == pytest.approx(std, rel=0.25), name
        elif corruption.kind == "contrast":
            factor = float(corruption.description.split("x ")[1].split(" ")[0])
            assert np.abs(out.astype(float) - factor * frame).max() <= 1, name
        elif corruption.kind == "brightness":
            shift = float(corruption.level) * 255
            assert np.abs(out.astype(float) - np.clip(frame + shift, 0, 255)).max() <= 1, name
        else:
            assert corruption.kind == "downscale", name
    assert seen == {"blur", "noise", "contrast", "brightness", "downscale"}


def test_noise_is_the_same_on_every_run(source_video, tmp_path):
    first = write_corrupted_copy(source_video, tmp_path / "a.mp4", "noise:1")
    second = write_corrupted_copy(source_video, tmp_path / "b.mp4", "noise:1")
    assert first == second
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_folder_copies_are_redone_only_when_their_input_changed(source_video, tmp_path):
    source_dir = tmp_path / "videos"
    source_dir.mkdir()
    (source_dir / "real.mp4").write_bytes(source_video.read_bytes())
    (source_dir / "fake.mp4").write_bytes(source_video.read_bytes())
    (source_dir / "broken.mp4").write_text("not a video\n")
    labels = {"real.mp4": {"label": "REAL"}, "fake.mp4": {"label": "FAKE", "original": "real.mp4"},
              "broken.mp4": {"label": "REAL"}}
    (source_dir / "metadata.json").write_text(json.dumps(labels))
    out = tmp_path / "out"

    first = corrupt_folder(source_dir, out, "blur:1")
    assert sorted(first.written) == ["fake.mp4", "real.mp4"] and list(first.failed) == ["broken.mp4"]
    assert "broken.mp4" in first.failed["broken.mp4"] and "cannot be read" in first.failed["broken.mp4"]
    assert json.loads((out / "metadata.json").read_text()) == labels
    assert sorted(json.loads((out / FINGERPRINTS_NAME).read_text())) == ["fake.mp4", "real.mp4"]

    again = corrupt_folder(source_dir, out, "blur:1")
    assert again.written == [] and sorted(again.skipped) == ["fake.mp4", "real.mp4"]

    stat = (source_dir / "fake.mp4").stat()
    os.utime(source_dir / "fake.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = corrupt_folder(source_dir, out, "blur:1")
    assert changed.written == ["fake.mp4"] and changed.skipped == ["real.mp4"]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_refuses_to_write_over_its_source(source_video, tmp_path):
    with pytest.raises(CorruptionError, match="source folder"):
        corrupt_folder(source_video.parent, source_video.parent, "blur:1")
    with pytest.raises(ValueError, match="cannot replace its source"):
        write_corrupted_copy(source_video, source_video, "blur:1")
    with pytest.raises(ValueError, match="unknown corruption 'blur:9'"):
        write_corrupted_copy(source_video, tmp_path / "x.mp4", "blur:9")


@pytest.mark.real_data
def test_a_real_clip_keeps_its_frames_and_rate(real_small, tmp_path):
    """An FF++ clip (1280x720, 25 fps, 338 frames) through the cheapest corruption: every frame decoded and
    written, the rate kept, the size halved."""
    source = real_small / "dfdc_train_part_0" / "634.mp4"
    info = write_corrupted_copy(source, tmp_path / "634.mp4", "downscale:3")
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        source_frames = sum(1 for _ in container.decode(stream))
        width, height, rate = stream.width, stream.height, float(stream.average_rate)
    frames, fps = _decode(tmp_path / "634.mp4")
    assert len(frames) == info.frames == source_frames
    assert fps == pytest.approx(rate) and info.fps == pytest.approx(rate)
    assert frames[0].shape[:2] == (round(height / 3 / 2) * 2, round(width / 3 / 2) * 2)


def test_command_line_writes_one_folder_per_corruption(source_video, tmp_path, capsys):
    from prediction.corruptions import main

    source_dir = tmp_path / "videos"
    source_dir.mkdir()
    (source_dir / "a.mp4").write_bytes(source_video.read_bytes())
    assert main([str(source_dir), str(tmp_path / "out"), "--corruption", "brightness:-0.25", "h264:30",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["brightness_m0.25", "h264_30"]
    assert (tmp_path / "out" / "h264_30" / "a.mp4").is_file()
    assert "h264:30: 1 written, 0 unchanged, 0 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(source_dir), str(tmp_path / "out"), "--corruption", "blur:2"])
    assert "unknown corruption(s) ['blur:2']" in capsys.readouterr().err
