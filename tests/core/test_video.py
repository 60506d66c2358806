"""Frame reading on real H.264 files written with PyAV."""

from __future__ import annotations

import av
import numpy as np
import pytest

from core.video import (
    DecodeCounts,
    VideoReadError,
    evenly_spaced_indices,
    iter_frames,
    probe_video,
    read_sampled_frames,
)
from tests.conftest import write_truncated_video

N_FRAMES = 30


def _frame(index: int) -> np.ndarray:
    # each frame's brightness encodes its index, so decoded frames can be identified despite compression
    image = np.full((64, 96, 3), 8 * index, dtype=np.uint8)
    image[:, :, 2] = 255 - 8 * index
    return image


def _write_numbered(path, codec: str = "libx264", pix_fmt: str = "yuv420p"):
    """N_FRAMES numbered frames (see _frame) written with ``codec`` in ``pix_fmt``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, pix_fmt
        for i in range(N_FRAMES):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    return _write_numbered(tmp_path_factory.mktemp("video") / "numbered.mp4")


def _decoded_index(frame: np.ndarray) -> int:
    return int(round(frame[..., 0].mean() / 8))


def test_probe_reports_header(numbered_video):
    info = probe_video(numbered_video)
    assert (info.width, info.height, info.frame_count) == (96, 64, N_FRAMES)
    assert info.fps == pytest.approx(10, rel=0.01)


def test_every_nth_frame_in_one_pass(numbered_video):
    frames = list(iter_frames(numbered_video, every=10))
    assert [i for i, _ in frames] == [0, 10, 20]
    assert [_decoded_index(f) for _, f in frames] == [0, 10, 20]
    assert frames[0][1].shape == (64, 96, 3) and frames[0][1].dtype == np.uint8


def test_exact_indices_and_past_the_end(numbered_video):
    frames = list(iter_frames(numbered_video, frame_indices=[29, 3, 3, 7, 500]))
    assert [i for i, _ in frames] == [3, 7, 29]
    assert [_decoded_index(f) for _, f in frames] == [3, 7, 29]


def test_evenly_spaced_sampling(numbered_video):
    assert evenly_spaced_indices(300, 32)[:3] == [0, 10, 19] and evenly_spaced_indices(300, 32)[-1] == 299
    assert evenly_spaced_indices(5, 32) == [0, 1, 2, 3, 4]
    assert evenly_spaced_indices(0, 32) == []
    indices, frames = read_sampled_frames(numbered_video, 4)
    assert indices == [0, 10, 19, 29]
    assert [_decoded_index(f) for f in frames] == indices


def test_truncated_sampling_is_the_winners(numbered_video):
    # the DFDC winner's predictor: np.linspace(0, count - 1, n, endpoint=True, dtype=int)
    for count in range(1, 400, 7):
        winner = sorted(set(np.linspace(0, count - 1, 32, endpoint=True, dtype=int).tolist()))
        assert evenly_spaced_indices(count, 32, "truncate") == winner, count
    assert evenly_spaced_indices(300, 32, "truncate")[:3] == [0, 9, 19]  # 9.65 -> 9, rounded: 10
    indices, frames = read_sampled_frames(numbered_video, 4, "truncate")
    assert indices == [0, 9, 19, 29] and [_decoded_index(f) for f in frames] == indices
    with pytest.raises(ValueError, match="truncate"):
        evenly_spaced_indices(300, 32, "floor")


def test_bad_files_raise_clear_errors(tmp_path, numbered_video):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(numbered_video.read_bytes()[:200])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path in (truncated, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoReadError, match=path.name):
            read_sampled_frames(path, 4)


def test_a_partly_decodable_video_reports_header_and_decoded_frame_counts(tmp_path, numbered_video):
    path = write_truncated_video([_frame(i) for i in range(25)], tmp_path / "cut.mp4", keep_frames=6)
    # both decoders in use see what the tests below assume: a header of 25 frames, 6 that decode
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 25
        assert [_decoded_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)] == list(range(6))
    assert probe_video(path).frame_count == 25

    counts = DecodeCounts()
    assert [i for i, _ in iter_frames(path, every=2, counts=counts)] == [0, 2, 4]
    assert (counts.header_frames, counts.decoded_frames, counts.partial) == (25, 6, True)
    assert "6 of the 25 frames" in counts.partial_warning(path) and str(path) in counts.partial_warning(path)
    counts = DecodeCounts()  # exact frames, some past the end of what decodes
    assert [i for i, _ in iter_frames(path, [3, 10, 20], counts=counts)] == [3]
    assert (counts.decoded_frames, counts.partial) == (6, True)
    counts = DecodeCounts()  # the sampling prediction uses: resampled over the frames that decode
    indices, frames = read_sampled_frames(path, 4, counts=counts)
    assert indices == [0, 2, 3, 5] and [_decoded_index(f) for f in frames] == indices
    assert (counts.header_frames, counts.decoded_frames, counts.partial) == (25, 6, True)

    # a whole video is never partial, also when decoding stops at the last frame wanted
    for frames_wanted in (dict(every=10), dict(frame_indices=[3]), dict()):
        counts = DecodeCounts()
        list(iter_frames(numbered_video, counts=counts, **frames_wanted))
        assert counts.header_frames == N_FRAMES and not counts.partial and counts.partial_warning(path) is None
    counts = DecodeCounts()
    read_sampled_frames(numbered_video, 4, counts=counts)
    assert (counts.decoded_frames, counts.partial) == (N_FRAMES, False)


def _opencv_pass(path, indices):
    """The frames as the one-pass OpenCV reader gives them (iter_frames), for comparison."""
    return [(i, f) for i, f in iter_frames(path, indices)]


def _assert_same_frames(got_indices, got_frames, expected):
    assert got_indices == [i for i, _ in expected]
    assert all(np.array_equal(a, b) for a, (_, b) in zip(got_frames, expected))


def test_sparse_sample_skips_unwanted_non_reference_frames_with_the_same_pixels(numbered_video, real_small_or_none):
    from core.video import _read_skipping_unwanted

    clips = [numbered_video]
    if real_small_or_none is not None:  # FF++ 640x480 and DFDC 1920x1080 clips, B-frames and all
        clips += [real_small_or_none / "dfdc_train_part_0" / name for name in ("519.mp4", "lynaeydofd.mp4")]
    for path in clips:
        header = probe_video(path).frame_count
        for n, sampling in ((4, "round"), (32, "truncate")):
            planned = evenly_spaced_indices(header, n, sampling)
            assert _read_skipping_unwanted(path, planned, header) is not None  # the skipping pass is the one taken
            counts = DecodeCounts()
            indices, frames = read_sampled_frames(path, n, sampling, counts=counts)
            _assert_same_frames(indices, frames, _opencv_pass(path, planned))
            assert (counts.header_frames, counts.decoded_frames, counts.partial) == (header, planned[-1] + 1, False)
    assert [_decoded_index(f) for f in read_sampled_frames(numbered_video, 4)[1]] == [0, 10, 19, 29]


def test_other_codecs_and_untrustworthy_counts_are_read_by_the_opencv_pass(tmp_path, numbered_video):
    from core.video import _read_skipping_unwanted

    # not H.264: the skipping pass declines, the OpenCV pass reads it
    mpeg4 = _write_numbered(tmp_path / "mpeg4.mp4", codec="mpeg4")
    header = probe_video(mpeg4).frame_count
    assert _read_skipping_unwanted(mpeg4, [0, 10], header) is None
    indices, frames = read_sampled_frames(mpeg4, 4)
    assert indices == [0, 10, 19, 29] and [_decoded_index(f) for f in frames] == indices
    # a header count the packets do not match: no frame index is trusted
    assert _read_skipping_unwanted(numbered_video, [0, 10], N_FRAMES + 1) is None


def _rotated_copy(path, into):
    """``path`` with its track's display matrix set to a 90 degree rotation (a phone video's portrait flag)."""
    import struct

    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    assert data[box + 4] == 0  # version 0 layout: the matrix starts 40 bytes after the version byte
    matrix = box + 44
    data[matrix:matrix + 36] = struct.pack(">9I", 0, 0x00010000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)
    into.write_bytes(bytes(data))
    return into


def test_a_rotated_video_is_read_upright_by_the_opencv_pass(tmp_path, numbered_video):
    from core.video import _read_skipping_unwanted

    rotated = _rotated_copy(numbered_video, tmp_path / "portrait.mp4")
    header = probe_video(rotated).frame_count
    assert _read_skipping_unwanted(rotated, [0, 10], header) is None  # PyAV would hand the frames over sideways
    indices, frames = read_sampled_frames(rotated, 4)
    assert indices == [0, 10, 19, 29]
    expected = _opencv_pass(rotated, indices)
    assert frames[0].shape == expected[0][1].shape == (96, 64, 3)  # turned upright
    _assert_same_frames(indices, frames, expected)


def test_a_full_range_video_is_left_to_the_opencv_pass(tmp_path):
    from core.video import _read_skipping_unwanted

    # yuvj420p (full range): its colour conversion is not checked against OpenCV's
    path = _write_numbered(tmp_path / "full_range.mp4", pix_fmt="yuvj420p")
    assert _read_skipping_unwanted(path, [0, 10], probe_video(path).frame_count) is None
    indices, frames = read_sampled_frames(path, 4)
    assert indices == [0, 10, 19, 29] and [_decoded_index(f) for f in frames] == indices
