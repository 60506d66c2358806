"""Face-track clips on disk: fixed-size RGB frames stored as one H.264 MP4 per clip.

Clips are encoded with libx264 in 4:4:4 (no chroma subsampling: at 112 px a 4:2:0 clip keeps only
56 x 56 colour samples, and colour seams are among the traces a face swap leaves) at a low constant
rate factor, with one encoder thread and numbered frames. ``DEFAULT_CRF`` 10 gives about 0.7 KB per
112 px frame with a mean error of about one grey level; CRF 0 (about 4.6 KB per frame) leaves only the
error of the RGB -> YUV conversion (at most 2 levels). Measured in docs/preprocessing.md
("Face-track clips").

The same frames give the same bytes on every run at most sides (64, 128, 160, 192, 224, 256, 288, 320 px
measured), but not at 96, 112 or 144 px: there libx264's assembly reads memory outside the picture and
the bytes (not the quality) vary from run to run; without the assembly (``asm=0``) they do not, at 3.6x
the encoding time.

``write_clip`` and ``read_clip`` are the only code that knows the encoding; readers of a clip folder
take the clip list from its index (``clips.json``, see ``read_clips_index``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.files import atomic_path

CLIP_CODEC = "libx264"
CLIP_PIXEL_FORMAT = "yuv444p"
DEFAULT_CRF = 10
MAX_CRF = 51  # libx264's range is 0 ... 51
CLIP_PRESET = "medium"
CLIPS_INDEX_FORMAT = 1


class ClipReadError(Exception):
    """A clip file cannot be decoded."""


def check_crf(crf: int) -> int:
    """``crf`` as an int in libx264's range, else ValueError naming the option."""
    try:
        value = int(crf)
    except (TypeError, ValueError):
        raise ValueError(f"--clip-crf {crf!r}: expected a whole number 0 ... {MAX_CRF}") from None
    if not 0 <= value <= MAX_CRF:
        raise ValueError(f"--clip-crf {crf}: must be 0 ... {MAX_CRF} (0: near-lossless, {DEFAULT_CRF}: the default)")
    return value


def clip_rate(fps: float) -> Fraction:
    """A frame rate as the fraction MP4 stores (29.97 -> 30000/1001); 25 when unknown."""
    return Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)


def write_clip(target: str | os.PathLike, frames: Sequence[np.ndarray], fps: float, crf: int = DEFAULT_CRF,
               root: str | os.PathLike | None = None) -> Path:
    """Encode RGB uint8 frames (all of one even-sided size) into an MP4 at ``target`` via temp + rename
    (``root``: the output folder the target must stay inside); returns ``target``."""
    import av

    if not frames:
        raise ValueError(f"{target}: a clip needs at least one frame")
    height, width = frames[0].shape[:2]
    rate = clip_rate(fps)
    # one x264 thread and a timestamp on every frame: the same frames then give the same bytes (see above)
    options = {"crf": str(check_crf(crf)), "preset": CLIP_PRESET, "x264-params": "threads=1:lookahead-threads=1"}
    with atomic_path(target, root) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream(CLIP_CODEC, rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, CLIP_PIXEL_FORMAT
            stream.codec_context.thread_count = 1
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts, picture.time_base = index, 1 / rate
                for packet in stream.encode(picture):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return Path(target)


def read_clip(path: str | os.PathLike, stop: int | None = None) -> np.ndarray:
    """Every frame of a clip (with ``stop``: its first ``stop`` frames, decoding no further) as one
    ``(frames, height, width, 3)`` RGB uint8 array."""
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if stop is not None and len(frames) >= stop:
                    break
    except (OSError, av.FFmpegError) as exc:
        raise ClipReadError(f"{path}: cannot be decoded as a clip ({exc}); rerun extract_clips to rewrite it") from None
    if not frames:
        raise ClipReadError(f"{path}: holds no frame; rerun extract_clips to rewrite it")
    return np.stack(frames)


def read_clips_index(path: str | os.PathLike) -> dict:
    """A video's ``clips.json``: ``{"video", "original", "clips": [{"file", "person", "frames", "region"}, ...],
    ...}`` (see docs/preprocessing.md); ValueError naming the file when it is not one."""
    try:
        index = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as a clips index ({exc}); rerun extract_clips") from None
    if not isinstance(index, dict) or index.get("format") != CLIPS_INDEX_FORMAT or not isinstance(
            index.get("clips"), list):
        raise ValueError(f"{path}: not a clips index of format {CLIPS_INDEX_FORMAT}; rerun extract_clips")
    return index
