"""Clip files: H.264 4:4:4 MP4s of face frames, written atomically and byte for byte the same on a rerun."""

from __future__ import annotations

import numpy as np
import pytest

from core.clips import ClipReadError, read_clip, read_clips_index, write_clip
from core.geometry import face_to_model_input
from core.video import iter_frames
from datasets.layout import DataLayout
from preprocessing.extract_clips import DEFAULT_SIDE_PX


@pytest.fixture(scope="module")
def face_frames(sample_root) -> list[np.ndarray]:
    """The centre of the first 20 frames of a generated video at the stage's default side (real decoded
    footage)."""
    video = next(e for e in DataLayout(sample_root).scan()[0] if not e.is_fake)
    frames = [frame for _, frame in iter_frames(video.path)][:20]
    height, width = frames[0].shape[:2]
    return [face_to_model_input(f[height // 4:3 * height // 4, width // 4:3 * width // 4], DEFAULT_SIDE_PX)
            for f in frames]


def test_clip_round_trip_is_within_the_codecs_noise_and_reproducible(face_frames, tmp_path):
    raw = np.stack(face_frames).astype(np.int16)
    first = write_clip(tmp_path / "a" / "0_0.mp4", face_frames, fps=10)
    for attempt in range(5):  # at some sides libx264 writes other bytes now and then (core.clips), not at this one
        again = write_clip(tmp_path / "b" / f"{attempt}.mp4", face_frames, fps=10)
        assert first.read_bytes() == again.read_bytes()
    decoded = read_clip(first)
    assert decoded.shape == raw.shape and decoded.dtype == np.uint8
    assert np.abs(decoded - raw).mean() < 1.5
    near_lossless = write_clip(tmp_path / "c" / "0_0.mp4", face_frames, fps=10, crf=0)
    assert np.abs(read_clip(near_lossless) - raw).max() <= 3  # only the RGB -> YUV rounding is left
    assert near_lossless.stat().st_size > first.stat().st_size
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["0_0.mp4"]  # no temp file left behind


def test_bad_clip_files_and_options_are_named(face_frames, tmp_path):
    not_a_clip = tmp_path / "0_0.mp4"
    not_a_clip.write_bytes(b"not a video")
    with pytest.raises(ClipReadError, match="0_0.mp4.*rerun extract_clips"):
        read_clip(not_a_clip)
    with pytest.raises(ValueError, match="--clip-crf 52"):
        write_clip(tmp_path / "x.mp4", face_frames, fps=10, crf=52)
    assert not (tmp_path / "x.mp4").exists()
    index = tmp_path / "clips.json"
    index.write_text('{"format": 99, "clips": []}')
    with pytest.raises(ValueError, match="not a clips index"):
        read_clips_index(index)
