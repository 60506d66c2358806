"""Test-time corruptions of videos, as clips reach a user after social platforms and cameras: H.264
re-encoding, downscaling, Gaussian blur, Gaussian noise, brightness and contrast changes.

Each corruption is an entry of :data:`CORRUPTIONS` named ``kind:level`` (``h264:40``, ``blur:3``). Where
DeeperForensics-1.0 defines the levels (its ``perturbation/add_distortion_to_video.py``: levels 1-5 of
video compression ``VC``, Gaussian blur ``GB``, white Gaussian noise ``GNC``, contrast ``CC`` and the
down-and-up resize it calls ``JPEG``) the level numbers and their parameters are DeeperForensics'; the
others (brightness, the H.264 default CRF 23) are this project's and say so in their description.

:func:`write_corrupted_copy` decodes a video in one pass, applies the corruption to every frame and writes
an H.264 MP4 with PyAV at the source's frame rate, without audio, atomically (nothing is left under the
target's name if it fails). :func:`corrupt_folder` does that for the labelled videos of a folder into a
folder the caller names, copies their labels and skips copies whose source and corruption are unchanged
(a fingerprint per copy in ``.corruptions.json``). ``python -m prediction.corruptions`` is its command
line; ``bench/robustness.py`` scores a checkpoint on every corruption.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.files import (
    atomic_path,
    guard_inside,
    remove_stale_temps,
    stable_id_hash,
    temp_target_name,
    write_json_atomic,
)
from core.registry import Registry

log = logging.getLogger(__name__)

FrameTransform = Callable[[np.ndarray], np.ndarray]  # RGB uint8 (H, W, 3) -> RGB uint8
FINGERPRINTS_NAME = ".corruptions.json"  # hidden: the predictor lists only video files
# bump when what a corruption writes changes for the same name (the copies are then redone)
CORRUPTION_CODE_VERSION = 1
# the corruptions that do not re-encode on purpose are written near-losslessly, so that the copy differs
# from its source by the corruption and not by a second lossy encode
# (CRF 14: near-lossless, x264 "ultrafast": a noise copy at CRF 12 "veryfast" took 4x as long, 40x the bytes)
CARRIER_CRF = 14
CARRIER_PRESET = "ultrafast"
# the CRF corruption uses ffmpeg's default preset, as DeeperForensics' `ffmpeg -crf N` did
COMPRESSION_PRESET = "medium"


class CorruptionError(Exception):
    """A video cannot be corrupted (unreadable, no frame); the message names the file."""


@dataclass(frozen=True)
class Corruption:
    """One corruption at one level: how each frame changes and how the copy is encoded."""

    name: str  # "kind:level"
    description: str  # what it does, with its parameter and units
    # (width, height, seed) of a video -> its per-frame transform; None: frames unchanged (re-encode only)
    make_transform: Callable[[int, int, int], FrameTransform] | None
    crf: int = CARRIER_CRF
    preset: str = CARRIER_PRESET
    scale: float = 1.0  # output size / input size

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def level(self) -> str:
        return self.name.split(":", 1)[1]

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The copy's frame size: scaled, rounded to even numbers (H.264 4:2:0 needs them), at least 2 px."""
        def even(n: int) -> int:
            return max(2, int(round(n * self.scale / 2)) * 2)
        return even(width), even(height)

    def fingerprint(self) -> dict:
        return {"name": self.name, "description": self.description, "crf": self.crf, "preset": self.preset,
                "scale": self.scale, "code_version": CORRUPTION_CODE_VERSION}


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def _albumentations(transform_factory: Callable[[], object]) -> Callable[[int, int, int], FrameTransform]:
    """A per-video transform of one albumentations transform (always applied, seeded per video)."""
    def make(width: int, height: int, seed: int) -> FrameTransform:
        import albumentations as A

        pipeline = A.Compose([transform_factory()], seed=seed)
        return lambda frame: pipeline(image=frame)["image"]
    return make


def _resize_to_output(corruption_scale: float) -> Callable[[int, int, int], FrameTransform]:
    def make(width: int, height: int, seed: int) -> FrameTransform:
        import albumentations as A
        import cv2

        out_w, out_h = Corruption("x:0", "", None, scale=corruption_scale).output_size(width, height)
        resize = A.Resize(height=out_h, width=out_w, interpolation=cv2.INTER_AREA, p=1.0)
        return lambda frame: resize(image=frame)["image"]
    return make


def _register_all() -> None:
    import albumentations as A

    # DeeperForensics VC levels 1, 3, 5 = CRF 30, 35, 40; CRF 23 is x264's default (FF++'s "c23")
    for crf, note in ((23, "x264's default, FF++ c23"), (30, "DeeperForensics VC level 1"),
                      (35, "DeeperForensics VC level 3"), (40, "DeeperForensics VC level 5")):
        CORRUPTIONS.register(f"h264:{crf}", Corruption(
            f"h264:{crf}", f"H.264 re-encode, CRF {crf}, preset {COMPRESSION_PRESET} ({note})", None,
            crf=crf, preset=COMPRESSION_PRESET))
    # a platform's smaller rendition, kept small (DeeperForensics' JPEG levels 1, 2 resize by 1/2, 1/3 and
    # back up; here the copy stays small, so face detection sees the fewer pixels too)
    for factor in (2, 3):
        CORRUPTIONS.register(f"downscale:{factor}", Corruption(
            f"downscale:{factor}", f"downscaled to 1/{factor} of width and height (area interpolation), "
            f"not scaled back (DeeperForensics' factor {factor}, JPEG level {factor - 1})",
            _resize_to_output(1 / factor), scale=1 / factor))
    # DeeperForensics GB levels 1, 3, 5: kernel 7, 13, 21 px, sigma = kernel / 6
    for level, kernel in ((1, 7), (3, 13), (5, 21)):
        sigma = kernel / 6
        CORRUPTIONS.register(f"blur:{level}", Corruption(
            f"blur:{level}", f"Gaussian blur, kernel {kernel} px, sigma {sigma:.2f} px (DeeperForensics GB "
            f"level {level})",
            _albumentations(lambda k=kernel, s=sigma: A.GaussianBlur(blur_limit=(k, k), sigma_limit=(s, s), p=1.0))))
    # DeeperForensics GNC levels 1, 3, 5: noise variance 0.001, 0.005, 0.05 of the [0, 1] range (it adds
    # the noise in YCbCr; here in RGB, each channel)
    for level, variance in ((1, 0.001), (3, 0.005), (5, 0.05)):
        std = math.sqrt(variance)
        CORRUPTIONS.register(f"noise:{level}", Corruption(
            f"noise:{level}", f"Gaussian noise, std {std:.3f} x 255 = {std * 255:.1f} levels per RGB channel (variance {variance}, "
            f"DeeperForensics GNC level {level})",
            _albumentations(lambda s=std: A.GaussNoise(std_range=(s, s), mean_range=(0, 0), per_channel=True,
                                                       p=1.0))))
    # DeeperForensics CC levels 1, 3, 5: every pixel value times 0.85, 0.6, 0.35
    for level, factor in ((1, 0.85), (3, 0.6), (5, 0.35)):
        CORRUPTIONS.register(f"contrast:{level}", Corruption(
            f"contrast:{level}", f"pixel values x {factor} (DeeperForensics CC level {level}: lower contrast "
            f"and darker)",
            _albumentations(lambda c=factor - 1: A.RandomBrightnessContrast(
                brightness_limit=(0, 0), contrast_limit=(c, c), brightness_by_max=True, p=1.0))))
    # brightness has no DeeperForensics level: +-0.25 of 255 added to every pixel value (clipped)
    for level, shift in (("+0.25", 0.25), ("-0.25", -0.25)):
        CORRUPTIONS.register(f"brightness:{level}", Corruption(
            f"brightness:{level}", f"{shift:+.2f} x 255 added to every pixel value, clipped (this project's "
            f"level; DeeperForensics has none)",
            _albumentations(lambda b=shift: A.RandomBrightnessContrast(
                brightness_limit=(b, b), contrast_limit=(0, 0), brightness_by_max=True, p=1.0))))


_register_all()


# ---- writing one corrupted copy ---------------------------------------------------------------------
@dataclass(frozen=True)
class CopyInfo:
    """What was written: frames, their rate and size, the file's size."""

    frames: int
    fps: float
    width: int
    height: int
    bytes: int


def video_seed(source: Path, corruption: Corruption) -> int:
    """The seed of a video's random corruption (noise): the same copy on every run and machine."""
    return stable_id_hash(f"{source.name}|{corruption.name}") % (2**31)


def _frame_rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise CorruptionError("its video stream states no frame rate")
    return Fraction(rate)


def _encode_frames(source: Path, tmp: Path, corruption: Corruption) -> CopyInfo:
    import av

    frames = 0
    with av.open(str(source)) as reader, av.open(str(tmp), "w", format="mp4") as writer:
        stream_in = reader.streams.video[0]
        stream_in.thread_type = "AUTO"
        fps = _frame_rate(stream_in)
        stream_out = None
        transform = None
        for frame in reader.decode(stream_in):
            image = frame.to_ndarray(format="rgb24")
            if stream_out is None:
                height, width = image.shape[:2]
                out_w, out_h = corruption.output_size(width, height)
                stream_out = writer.add_stream("libx264", rate=fps, options={"crf": str(corruption.crf),
                                                                            "preset": corruption.preset})
                stream_out.width, stream_out.height, stream_out.pix_fmt = out_w, out_h, "yuv420p"
                if corruption.make_transform is not None:
                    transform = corruption.make_transform(width, height, video_seed(source, corruption))
            if transform is not None:
                image = np.ascontiguousarray(transform(image))
            out = av.VideoFrame.from_ndarray(image, format="rgb24")
            out.pts = frames
            out.time_base = 1 / fps
            for packet in stream_out.encode(out):
                writer.mux(packet)
            frames += 1
        if stream_out is None:
            raise CorruptionError("no frame decodes")
        for packet in stream_out.encode(None):
            writer.mux(packet)
    return CopyInfo(frames, float(fps), stream_out.width, stream_out.height, 0)


def write_corrupted_copy(source: str | os.PathLike, target: str | os.PathLike, corruption: Corruption | str,
                         root: str | os.PathLike | None = None) -> CopyInfo:
    """``source`` with ``corruption`` (an entry or its name) applied to every frame, written to ``target``
    (an MP4, atomically; with ``root``, only strictly inside it): same frame count and frame rate, no audio.
    CorruptionError (naming the file) when the source cannot be decoded."""
    import av

    source, target = Path(source), Path(target)
    corruption = CORRUPTIONS.get(corruption) if isinstance(corruption, str) else corruption
    if source.resolve() == target.resolve():
        raise ValueError(f"{target}: a corrupted copy cannot replace its source; name another folder")
    try:
        with atomic_path(target, root) as tmp:
            info = _encode_frames(source, tmp, corruption)
    except (av.error.FFmpegError, OSError, CorruptionError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, av.error.FFmpegError) and source.is_file():
            raise  # a write error (full disk) is not the source's fault
        raise CorruptionError(f"{source}: cannot be read as a video ({exc}); replace the file or leave it "
                              f"out") from exc
    return CopyInfo(info.frames, info.fps, info.width, info.height, target.stat().st_size)


# ---- a folder of corrupted copies -------------------------------------------------------------------
LABEL_FILES = ("metadata.json",)  # copied next to the copies, so the predictor scores them
COPIED_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass
class FolderSummary:
    """What :func:`corrupt_folder` did: copies written, skipped (unchanged), failed (name -> reason)."""

    written: list[str]
    skipped: list[str]
    failed: dict[str, str]


def source_fingerprint(source: Path, corruption: Corruption) -> dict:
    """What a copy was made from: the source file (path, size, modification time) and the corruption."""
    stat = source.stat()
    return {"source": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "corruption": corruption.fingerprint()}


def _read_fingerprints(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def source_videos(source_dir: Path) -> list[Path]:
    """The video files directly in ``source_dir``, by name (hidden files and temp files left out)."""
    return sorted(p for p in source_dir.iterdir() if p.suffix.lower() in COPIED_SUFFIXES and p.is_file()
                  and not p.name.startswith("."))


def corrupt_folder(source_dir: str | os.PathLike, out_dir: str | os.PathLike, corruption: Corruption | str,
                   progress: bool = False) -> FolderSummary:
    """A corrupted MP4 copy (same name, ``.mp4``) of every video of ``source_dir`` in ``out_dir``, with the
    folder's labels (``metadata.json``) copied. A copy whose fingerprint (source file and corruption) is
    unchanged is kept; a video that cannot be decoded is left out with its reason (the run goes on).
    Nothing is written outside ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    corruption = CORRUPTIONS.get(corruption) if isinstance(corruption, str) else corruption
    if not source_dir.is_dir():
        raise CorruptionError(f"{source_dir} is not a folder; pass the folder of the videos to corrupt")
    if out_dir.resolve() == source_dir.resolve():
        raise CorruptionError(f"{out_dir}: the copies cannot go into the source folder; name another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, owned=lambda name: temp_target_name(name) is not None)
    prints_path = out_dir / FINGERPRINTS_NAME
    prints = _read_fingerprints(prints_path)
    summary = FolderSummary([], [], {})
    from tqdm import tqdm

    for source in tqdm(source_videos(source_dir), unit="video", desc=corruption.name, disable=not progress):
        name = source.stem + ".mp4"
        target = guard_inside(out_dir, out_dir / name)
        wanted = source_fingerprint(source, corruption)
        if target.is_file() and prints.get(name) == wanted:
            summary.skipped.append(name)
            continue
        prints.pop(name, None)
        try:
            write_corrupted_copy(source, target, corruption, root=out_dir)
        except CorruptionError as exc:
            summary.failed[name] = str(exc)
            log.warning("%s", exc)
            continue
        prints[name] = wanted
        write_json_atomic(prints_path, prints, root=out_dir)  # after each copy: a killed run keeps the rest
        summary.written.append(name)
    _copy_labels(source_dir, out_dir)
    return summary


def _copy_labels(source_dir: Path, out_dir: Path) -> None:
    """The label files of ``source_dir``, renamed to the copies' ``.mp4`` names where needed."""
    for label_name in LABEL_FILES:
        path = source_dir / label_name
        if not path.is_file():
            continue
        labels = json.loads(path.read_text())
        if isinstance(labels, dict):
            labels = {Path(k).stem + ".mp4" if Path(k).suffix.lower() in COPIED_SUFFIXES else k: v
                      for k, v in labels.items()}
        write_json_atomic(out_dir / label_name, labels, root=out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write corrupted copies of the videos of a folder (H.264 "
                                     "re-encode, downscale, blur, noise, contrast, brightness).")
    parser.add_argument("source_dir", type=Path, nargs="?", help="folder of videos (with metadata.json labels)")
    parser.add_argument("out_dir", type=Path, nargs="?", help="folder for the copies (created; only it is written)")
    parser.add_argument("--corruption", nargs="+", metavar="KIND:LEVEL",
                        help=f"one or more of: {', '.join(CORRUPTIONS.names())}; each into OUT_DIR/KIND_LEVEL "
                        "when several are given")
    parser.add_argument("--list", action="store_true", help="list the corruptions and exit")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if args.list:
        for name, corruption in CORRUPTIONS.items():
            print(f"{name:18s} {corruption.description}")
        return 0
    if args.source_dir is None or args.out_dir is None or not args.corruption:
        parser.error("pass SOURCE_DIR OUT_DIR --corruption KIND:LEVEL ... (or --list)")
    unknown = [n for n in args.corruption if n not in CORRUPTIONS]
    if unknown:
        parser.error(f"unknown corruption(s) {unknown}; known: {', '.join(CORRUPTIONS.names())}")
    for name in args.corruption:
        out = args.out_dir if len(args.corruption) == 1 else args.out_dir / folder_name(name)
        try:
            summary = corrupt_folder(args.source_dir, out, name, progress=args.progress)
        except CorruptionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: {len(summary.written)} written, {len(summary.skipped)} unchanged, {len(summary.failed)} "
              f"failed -> {out}")
        for video, reason in summary.failed.items():
            print(f"  {video}: {reason}", file=sys.stderr)
    return 0


def folder_name(corruption_name: str) -> str:
    """A corruption's folder name: ``h264:40`` -> ``h264_40`` (no colon in paths)."""
    return corruption_name.replace(":", "_").replace("+", "p").replace("-", "m")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
