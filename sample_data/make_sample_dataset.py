"""Generate a small, realistic DFDC-style dataset from face photographs shipped in installed packages.

::

    python -m sample_data.make_sample_dataset OUT_DIR [--parts 2] [--reals-per-part 4] [--seconds 3]
        [--fps 25] [--size 640x360] [--seed 0] [--test-videos 12] [--fakes-per-real 2] [--preview PNG]
        [--overwrite] [--workers N] [--no-progress] [--two-person SCENES]

Writes ``OUT_DIR/dfdc_train_part_<k>/{*.mp4, metadata.json}`` exactly like DFDC, and
``OUT_DIR/test_videos/{*.mp4, metadata.json}`` (other seeds, motion and backgrounds; REAL and FAKE mixed,
a fake's original is not in the folder) for prediction. ``--two-person SCENES`` adds
``OUT_DIR/two_person/``: two people side by side, both real or one of them face-swapped, with each
person's side and label in ``metadata.json`` (for per-person verdicts).

A real video is a portrait composited over a procedural background and filmed by a virtual camera
(slow pan, zoom and roll), with lighting drift and sensor noise. Its fakes are the same frames (same
camera path, lighting and noise) with only the face changed inside the dlib face hull:

* face swap: another person's face warped onto the same 68 landmarks (piecewise affine), colour
  matched part of the way, rendered at a lower resolution and blended through a feathered hull mask;
* self-blended: the same face slightly scaled, shifted and colour-shifted, blended the same way.

The scene of each video is built once; a frame costs one affine warp, a gain and a noise add per
variant. Encoding is H.264 (libx264, yuv420p) through PyAV with one thread and fixed options, so a
seed always gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.files import atomic_path, name_problem, remove_inside, write_bytes_atomic, write_json_atomic
from core.geometry import crop_box
from core.video import iter_frames
from datasets.dfdc import METADATA_NAME
from datasets.layout import TEST_VIDEOS_NAME, DataLayout
from sample_data.sample_faces import (
    Identity,
    draw_recipe,
    load_identities,
    make_fake_portrait,
    person_of,
    scaled,
)

MIN_SIDE_PX = 160  # below this the face would be smaller than ~48 px, too small for MTCNN to be reliable
FACE_TO_FRAME = 0.32  # dlib face-box side / shorter frame side at zoom 1
SCENE_MARGIN = 0.2  # scene canvas larger than the frame by this fraction on each side (room to pan)
# x264: one thread (same bytes every run), constant QP and a fixed GOP (frame types and quantisers do
# not depend on frame content), so a fake's encoding differs from its original's only near the face.
QP = 22
PRESET = "veryfast"
X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:b-adapt=0:scenecut=0:keyint=250:min-keyint=25"
FAKE_KINDS = ("face_swap", "self_blend")
ID_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


class SampleDatasetError(ValueError):
    """The arguments cannot make a dataset (nothing to write, unwritable folder, frame too small)."""


@dataclass(frozen=True)
class GeneratedVideo:
    path: Path
    label: str  # "REAL" or "FAKE"
    original: str | None  # file name of the original (train fakes only)
    kind: str  # "real", "face_swap" or "self_blend"
    identity: str


@dataclass
class SampleDatasetSummary:
    root: Path
    part_dirs: list[Path]
    test_dir: Path | None
    videos: list[GeneratedVideo] = field(default_factory=list)
    frames_per_video: int = 0
    size: tuple[int, int] = (0, 0)  # (width, height)
    fps: float = 0.0
    preview: Path | None = None

    @property
    def train_videos(self) -> list[GeneratedVideo]:
        return [v for v in self.videos if v.path.parent.name != TEST_VIDEOS_NAME]

    @property
    def test_videos(self) -> list[GeneratedVideo]:
        return [v for v in self.videos if v.path.parent.name == TEST_VIDEOS_NAME]

    def as_dict(self) -> dict:
        return {"root": str(self.root), "parts": [p.name for p in self.part_dirs],
                "train_videos": len(self.train_videos),
                "train_fakes": sum(v.label == "FAKE" for v in self.train_videos),
                "test_videos": len(self.test_videos),
                "test_fakes": sum(v.label == "FAKE" for v in self.test_videos),
                "frames_per_video": self.frames_per_video, "size": list(self.size), "fps": self.fps,
                "preview": str(self.preview) if self.preview else None}


# ---- scene -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Camera:
    """Smooth per-frame motion, lighting and noise of one scene (shared by a real and its fakes)."""

    face_scene_xy: tuple[float, float]  # face centre in scene pixels (the camera's pivot)
    frame_xy: tuple[float, float]  # where the face centre sits in the frame, pan aside
    pan_px: tuple[float, float]
    zoom: float
    roll_deg: float
    phases: tuple[float, ...]
    gain_amplitude: float
    tint: tuple[float, float, float]
    noise_sigma: float

    def matrix(self, t: float) -> np.ndarray:
        """Scene -> frame affine at time fraction ``t`` in [0, 1]."""
        p = self.phases
        zoom = 1.0 + self.zoom * np.sin(np.pi * t + p[0])
        roll = self.roll_deg * np.sin(np.pi * t + p[1])
        x = self.frame_xy[0] + self.pan_px[0] * np.sin(np.pi * t + p[2])
        y = self.frame_xy[1] + self.pan_px[1] * np.sin(np.pi * t + p[3])
        matrix = cv2.getRotationMatrix2D(self.face_scene_xy, float(roll), float(zoom))
        matrix[0, 2] += x - self.face_scene_xy[0]
        matrix[1, 2] += y - self.face_scene_xy[1]
        return matrix

    def gain_lut(self, t: float) -> np.ndarray:
        """Per-channel brightness lookup table (lighting drift and a slowly changing colour tint)."""
        base = 1.0 + self.gain_amplitude * np.sin(2 * np.pi * t + self.phases[4])
        gain = base * (1.0 + np.float32(self.tint) * np.sin(np.pi * t + self.phases[5]))
        levels = np.arange(256, dtype=np.float32)[:, None] * gain[None, :]
        return np.clip(np.round(levels), 0, 255).astype(np.uint8).reshape(1, 256, 3)


def _background(rng: np.random.Generator, height: int, width: int, style: str) -> np.ndarray:
    """A procedural, slightly defocused backdrop; ``style`` 'room' (walls, frames) or 'bokeh' (blobs).

    Drawn at half resolution and scaled up: it is out of focus anyway, and it is 4x cheaper.
    """
    full_size = (width, height)
    height, width = (height + 1) // 2, (width + 1) // 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xs * np.cos(angle) + ys * np.sin(angle))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    c0, c1 = rng.uniform(30, 210, 3).astype(np.float32), rng.uniform(30, 210, 3).astype(np.float32)
    image = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    grid = rng.uniform(-1, 1, (int(rng.integers(3, 7)), int(rng.integers(4, 9)), 3)).astype(np.float32)
    image += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(10, 30)
    side = min(height, width)
    if style == "room":
        for _ in range(int(rng.integers(3, 8))):
            w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.6) * height
            x, y = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
            colour = rng.uniform(20, 230, 3).tolist()
            overlay = image.copy()
            cv2.rectangle(overlay, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
            a = float(rng.uniform(0.3, 0.8))
            image = cv2.addWeighted(overlay, a, image, 1 - a, 0)
        for _ in range(int(rng.integers(2, 5))):
            y = int(rng.uniform(0, height))
            cv2.line(image, (0, y), (width, y + int(rng.uniform(-0.1, 0.1) * height)),
                     rng.uniform(20, 230, 3).tolist(), int(rng.integers(1, 4)))
    else:
        for _ in range(int(rng.integers(10, 25))):
            centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            overlay = image.copy()
            cv2.circle(overlay, centre, int(rng.uniform(0.03, 0.15) * side), rng.uniform(40, 255, 3).tolist(), -1)
            a = float(rng.uniform(0.2, 0.6))
            image = cv2.addWeighted(overlay, a, image, 1 - a, 0)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.004, 0.012) * side + 0.5)
    image = cv2.resize(np.clip(image, 0, 255).astype(np.uint8), full_size, interpolation=cv2.INTER_LINEAR)
    return image


def _person_mask(landmarks: np.ndarray, face_size: float, shape: tuple[int, int]) -> np.ndarray:
    """Soft head-and-shoulders silhouette (float32 0..1) that cuts the person out of the portrait."""
    cx, cy = landmarks.mean(axis=0)
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (int(cx), int(cy - 0.12 * face_size)), (int(0.7 * face_size), int(0.92 * face_size)),
                0, 0, 360, 1.0, -1)
    # neck widening into shoulders, down past the bottom of the portrait
    half_widths_and_drops = [(0.42, 0.45), (0.55, 0.8), (1.2, 1.05), (1.45, 1.4), (1.5, 3.0)]
    outline = [(cx - w * face_size, cy + d * face_size) for w, d in half_widths_and_drops]
    outline += [(cx + w * face_size, cy + d * face_size) for w, d in reversed(half_widths_and_drops)]
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), 0.05 * face_size)


@dataclass
class Scene:
    """One filmed set-up: the real portrait pasted on a background, plus what its fakes need."""

    background: np.ndarray
    portrait: np.ndarray
    landmarks: np.ndarray  # portrait pixels
    face_size_px: float
    offset: tuple[int, int]  # portrait top-left in scene pixels
    person_mask: np.ndarray
    lighting: np.ndarray  # (scene h, scene w, 1) float32 multiplier: a light fixed to the set
    camera: Camera
    identity: Identity

    def compose(self, portrait: np.ndarray) -> np.ndarray:
        scene = self.background.astype(np.float32)
        x0, y0 = self.offset
        h, w = portrait.shape[:2]
        # the portrait may run past the scene edges: paste only the overlap
        sx0, sy0 = max(0, -x0), max(0, -y0)
        sx1, sy1 = min(w, scene.shape[1] - x0), min(h, scene.shape[0] - y0)
        alpha = self.person_mask[sy0:sy1, sx0:sx1, None]
        region = scene[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
        region[:] = region * (1 - alpha) + portrait[sy0:sy1, sx0:sx1].astype(np.float32) * alpha
        return np.clip(np.round(scene * self.lighting), 0, 255).astype(np.uint8)


def _make_scene(rng: np.random.Generator, identity: Identity, width: int, height: int, test: bool) -> Scene:
    margin_x, margin_y = int(SCENE_MARGIN * width), int(SCENE_MARGIN * height)
    scene_w, scene_h = width + 2 * margin_x, height + 2 * margin_y
    background = _background(rng, scene_h, scene_w, "bokeh" if test else "room")
    face_size = FACE_TO_FRAME * min(width, height) * rng.uniform(0.95, 1.1)
    portrait, landmarks = scaled(identity, face_size)
    face_centre = landmarks.mean(axis=0)
    frame_xy = (width / 2 + rng.uniform(-0.12, 0.12) * width, height / 2 + rng.uniform(-0.06, 0.04) * height)
    face_scene = (frame_xy[0] + margin_x, frame_xy[1] + margin_y)
    offset = (int(round(face_scene[0] - face_centre[0])), int(round(face_scene[1] - face_centre[1])))
    # Test videos move a little more and faster-looking, so that prediction sees unseen motion.
    motion = 1.5 if test else 1.0
    camera = Camera(face_scene_xy=(float(face_scene[0]), float(face_scene[1])),
                    frame_xy=(float(frame_xy[0]), float(frame_xy[1])),
                    pan_px=(float(rng.uniform(-0.05, 0.05) * width * motion),
                            float(rng.uniform(-0.03, 0.03) * height * motion)),
                    zoom=float(rng.uniform(0.02, 0.06) * rng.choice([-1, 1])),
                    roll_deg=float(rng.uniform(1.0, 3.0) * motion * rng.choice([-1, 1])),
                    phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 6)),
                    gain_amplitude=float(rng.uniform(0.03, 0.08)),
                    tint=tuple(float(v) for v in rng.uniform(-0.04, 0.04, 3)),
                    noise_sigma=float(rng.uniform(0.8, 2.0)))
    mask = _person_mask(landmarks, face_size, portrait.shape[:2])
    # a broad light from one side, brightest around a random point of the set
    ys, xs = np.mgrid[0:scene_h, 0:scene_w].astype(np.float32)
    lx, ly = rng.uniform(0, scene_w), rng.uniform(0, scene_h)
    falloff = np.sqrt(((xs - lx) / scene_w) ** 2 + ((ys - ly) / scene_h) ** 2)
    lighting = (1.12 - rng.uniform(0.15, 0.35) * falloff)[..., None]
    return Scene(background, portrait, landmarks, face_size, offset, mask, lighting, camera, identity)


# ---- encoding --------------------------------------------------------------------------------------
class _H264Writer:
    """Deterministic H.264 MP4 writer (PyAV, libx264, yuv420p, one thread)."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import av

        self.container = av.open(str(path), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.thread_count = 1
        self.stream.codec_context.options = {"qp": str(QP), "preset": PRESET, "x264-params": X264_PARAMS}

    def write(self, rgb: np.ndarray) -> None:
        import av

        # OpenCV's BT.601 conversion is many times faster than PyAV's rgb24 -> yuv420p path
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _changed_box(real_scene: np.ndarray, fake_scene: np.ndarray) -> np.ndarray | None:
    """Corners (4, 2) of the scene rectangle where a fake differs from the real scene; None if nowhere."""
    ys, xs = np.nonzero(np.any(real_scene != fake_scene, axis=2))
    if len(xs) == 0:
        return None
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return np.float64([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])


def _render(scenes: list[np.ndarray], camera: Camera, rng: np.random.Generator, width: int, height: int,
            frames: int, writers: list[_H264Writer]) -> None:
    """Film a real scene (``scenes[0]``) and its fakes through the same camera, lighting and noise.

    A fake differs from the real scene only around the face, so its frame is the real frame with that
    rectangle re-rendered: same warp, same lookup table, same noise.
    """
    pad = 16
    noise = rng.normal(0, camera.noise_sigma, (height + pad, width + pad, 3))
    # signed noise as two saturating uint8 adds: far cheaper per frame than float arithmetic
    noise_up = np.clip(np.round(noise), 0, 255).astype(np.uint8)
    noise_down = np.clip(np.round(-noise), 0, 255).astype(np.uint8)
    boxes = [None] + [_changed_box(scenes[0], s) for s in scenes[1:]]
    for index in range(frames):
        t = index / max(frames - 1, 1)
        matrix = camera.matrix(t)
        lut = camera.gain_lut(t)
        dx, dy = (int(v) for v in rng.integers(0, pad, 2))

        def film(scene: np.ndarray, x0: int, y0: int, x1: int, y1: int, matrix=matrix, lut=lut, dx=dx, dy=dy):
            """The frame's rectangle [x0, x1) x [y0, y1): warp, lighting, sensor noise."""
            shifted = matrix.copy()
            shifted[:, 2] -= (x0, y0)
            frame = cv2.warpAffine(scene, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT101)
            frame = cv2.LUT(frame, lut)
            frame = cv2.add(frame, noise_up[dy + y0:dy + y1, dx + x0:dx + x1])
            return cv2.subtract(frame, noise_down[dy + y0:dy + y1, dx + x0:dx + x1])

        real = film(scenes[0], 0, 0, width, height)
        for scene, box, writer in zip(scenes, boxes, writers):
            frame = real
            if box is not None:
                corners = box @ matrix[:, :2].T + matrix[:, 2]
                x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
                x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
                x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
                frame = real.copy()
                if x1 > x0 and y1 > y0:
                    frame[y0:y1, x0:x1] = film(scene, x0, y0, x1, y1)
            writer.write(frame)


# ---- dataset ---------------------------------------------------------------------------------------
def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x360") from None
    return width, height


def _check_arguments(out_dir: Path, parts: int, reals_per_part: int, seconds: float, fps: float,
                     size: tuple[int, int], test_videos: int, fakes_per_real: int, seed: int) -> int:
    """The number of frames per video; raises SampleDatasetError for anything that cannot work."""
    if min(parts, reals_per_part, test_videos, fakes_per_real, seed) < 0:
        raise SampleDatasetError("parts, reals_per_part, test_videos, fakes_per_real and seed must not be negative")
    if parts * reals_per_part == 0:
        raise SampleDatasetError(f"parts={parts} x reals_per_part={reals_per_part} makes no training video; "
                                 f"use --parts 1 or more and --reals-per-part 1 or more")
    if fakes_per_real < 1:
        raise SampleDatasetError("fakes_per_real must be at least 1: a DFDC part without fakes cannot train a "
                                 "detector; use --fakes-per-real 2")
    width, height = (int(v) for v in size)
    if min(width, height) < MIN_SIDE_PX:
        raise SampleDatasetError(f"size {width}x{height} is too small for a detectable face: both sides must be at "
                                 f"least {MIN_SIDE_PX} px; use e.g. --size 320x240")
    if width % 2 or height % 2:
        raise SampleDatasetError(f"size {width}x{height}: H.264 yuv420p needs even sides; use e.g. "
                                 f"{width - width % 2}x{height - height % 2}")
    if fps <= 0 or seconds <= 0:
        raise SampleDatasetError(f"seconds={seconds} and fps={fps} must both be positive")
    frames = int(round(seconds * fps))
    if frames < 1:
        raise SampleDatasetError(f"seconds={seconds} at fps={fps} is less than one frame; use longer videos")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".tmp"):
            pass
    except OSError as exc:
        raise SampleDatasetError(f"cannot write to {out_dir} ({exc.strerror or exc}); pass a folder you can "
                                 f"write to") from None
    return frames


def _plan_names(layout: DataLayout, seed: int, parts: int, reals_per_part: int, fakes_per_real: int,
                test_videos: int) -> dict[str, list[str]]:
    """File names per output folder, DFDC-like random 10-letter ids, unique and fixed by the seed.

    A train part lists, per real video, the real then its fakes. Drawn from their own random stream,
    so the names do not depend on anything but the counts and the seed.
    """
    rng = np.random.default_rng([seed, 0])
    taken: set[str] = set()

    def new_name() -> str:
        while True:
            name = "".join(rng.choice(ID_LETTERS, 10)) + ".mp4"
            if name not in taken:
                taken.add(name)
                return name

    plan = {layout.part_dir(part).name: [new_name() for _ in range(reals_per_part * (1 + fakes_per_real))]
            for part in range(parts)}
    if test_videos:
        plan[layout.test_videos_dir.name] = [new_name() for _ in range(test_videos)]
    return plan


def _clear_previous(layout: DataLayout, plan: dict[str, list[str]], overwrite: bool) -> None:
    """Refuse to mix with another dataset in the layout's root; with ``overwrite`` remove its listed videos.

    The same arguments again rewrite the same files (same bytes), so that case needs no ``overwrite``.
    Only files a folder's metadata.json lists (and metadata.json itself) are ever deleted.
    """
    folders = {p.name: p for p in layout.parts()}
    if layout.test_videos_dir.is_dir():
        folders[TEST_VIDEOS_NAME] = layout.test_videos_dir
    for name, folder in sorted(folders.items()):
        meta_path = folder / METADATA_NAME
        if not meta_path.is_file():
            continue
        try:
            listed = json.loads(meta_path.read_text())
            listed = listed if isinstance(listed, dict) else {}
        except (OSError, ValueError):
            listed = {}
        if sorted(listed) == sorted(plan.get(name, [])):
            continue
        if not overwrite:
            raise SampleDatasetError(f"{meta_path} belongs to another dataset (other seed or counts); pass an "
                                     f"empty OUT_DIR, or --overwrite to replace the videos it lists")
        for file_name in listed:
            # a listed name that is not a plain file name of this folder is never followed
            if name_problem(file_name) is None and (folder / file_name).is_file():
                remove_inside(folder, folder / file_name)
        remove_inside(folder, meta_path)


@dataclass(frozen=True)
class _Job:
    """One scene: a train real and its fakes, or one test video. Independent of every other job."""

    folder: Path
    names: tuple[str, ...]  # train: real then fakes; test: the one video
    rng_key: tuple[int, ...]
    identity_index: int
    test_label: str | None  # None for a train scene, else "REAL" or "FAKE"
    fake_kinds: tuple[str, ...]


def _run_job(job: _Job, identities: tuple[Identity, ...], width: int, height: int, fps: float,
             frames: int) -> tuple[list[GeneratedVideo], tuple | None]:
    """Film one scene; returns its videos and, for a train scene, what the preview needs."""
    rng = np.random.default_rng(list(job.rng_key))
    # the draw keeps each scene's random stream independent of which identity it shows
    identity = identities[(job.identity_index + int(rng.integers(2))) % len(identities)]
    scene = _make_scene(rng, identity, width, height, test=job.test_label is not None)
    recipes = [draw_recipe(rng, kind, identity, identities) for kind in job.fake_kinds]
    fakes = [make_fake_portrait(scene.portrait, scene.landmarks, scene.face_size_px, r) for r in recipes]
    paths = [job.folder / n for n in job.names]
    if job.test_label is not None:
        _film(scene, fakes or [scene.portrait], paths, rng, width, height, fps, frames)
        kind = recipes[0].kind if recipes else "real"
        return [GeneratedVideo(paths[0], job.test_label, None, kind, identity.name)], None
    _film(scene, [scene.portrait] + fakes, paths, rng, width, height, fps, frames)
    videos = [GeneratedVideo(paths[0], "REAL", None, "real", identity.name)]
    videos += [GeneratedVideo(p, "FAKE", paths[0].name, r.kind, identity.name) for p, r in zip(paths[1:], recipes)]
    middle = frames // 2
    preview = (paths, [f"REAL {paths[0].name}"] + [f"FAKE: {r.describe()}" for r in recipes], middle,
               _face_box_in_frame(scene, middle / max(frames - 1, 1)))
    return videos, preview


def _jobs(layout: DataLayout, plan: dict[str, list[str]], seed: int, parts: int, reals_per_part: int,
          fakes_per_real: int) -> list[_Job]:
    jobs = []
    for part in range(parts):
        folder = layout.part_dir(part)
        names = plan[folder.name]
        group = 1 + fakes_per_real
        for index in range(reals_per_part):
            # the two people take turns; whether the photo is mirrored is drawn per video
            jobs.append(_Job(folder, tuple(names[index * group:(index + 1) * group]), (seed, 1, part, index),
                             2 * (part * reals_per_part + index),
                             None, tuple(FAKE_KINDS[k % len(FAKE_KINDS)] for k in range(fakes_per_real))))
    for index, name in enumerate(plan.get(TEST_VIDEOS_NAME, [])):
        # REAL, FAKE of one person, then of the other; the fake kind changes every two fakes, so that
        # neither the person nor the kind tells the label. A fake's original is not written.
        fake = index % 2 == 1
        kinds = (FAKE_KINDS[(index // 4) % len(FAKE_KINDS)],) if fake else ()
        jobs.append(_Job(layout.test_videos_dir, (name,), (seed, 2, index), 2 * ((index // 2) % 2),
                         "FAKE" if fake else "REAL", kinds))
    return jobs


def generate_sample_dataset(out_dir: str | os.PathLike, parts: int = 2, reals_per_part: int = 4,
                            seconds: float = 3.0, fps: float = 25, size: tuple[int, int] = (640, 360),
                            seed: int = 0, test_videos: int = 12, fakes_per_real: int = 2,
                            preview: str | os.PathLike | None = None, progress: bool = True,
                            overwrite: bool = False, workers: int | None = None) -> SampleDatasetSummary:
    """Write a DFDC-style dataset (train parts + ``test_videos/``) into ``out_dir``; see the module doc.

    Running again with the same arguments rewrites the same bytes. ``overwrite`` replaces a dataset
    made with other arguments (only the videos its metadata.json files list are removed).
    ``workers`` threads film scenes in parallel (default: up to 2 per the CPUs); the bytes do not
    depend on it. Raises SampleDatasetError (a ValueError) for arguments that cannot make a dataset.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    width, height = (int(v) for v in size)
    frames = _check_arguments(out_dir, parts, reals_per_part, seconds, fps, (width, height), test_videos,
                              fakes_per_real, seed)
    layout = DataLayout(out_dir)
    plan = _plan_names(layout, seed, parts, reals_per_part, fakes_per_real, test_videos)
    _clear_previous(layout, plan, overwrite)
    identities = load_identities()
    jobs = _jobs(layout, plan, seed, parts, reals_per_part, fakes_per_real)
    for folder in sorted({job.folder for job in jobs}):
        folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(jobs)))
    results = []
    with tqdm(total=sum(len(job.names) for job in jobs), desc="sample videos", unit="video",
              disable=not progress) as bar, ThreadPoolExecutor(workers) as pool:
        if workers == 1:
            outcomes = (_run_job(job, identities, width, height, fps, frames) for job in jobs)
        else:  # cv2 and the encoder release the GIL, so threads film scenes side by side
            futures = [pool.submit(_run_job, job, identities, width, height, fps, frames) for job in jobs]
            outcomes = (future.result() for future in futures)
        for job, outcome in zip(jobs, outcomes):
            results.append(outcome)
            bar.update(len(job.names))
    summary = SampleDatasetSummary(out_dir, [], None, frames_per_video=frames, size=(width, height), fps=float(fps))
    for videos, _ in results:
        summary.videos.extend(videos)
    for folder in sorted({job.folder for job in jobs}, key=lambda f: (f.name == TEST_VIDEOS_NAME, len(f.name), f.name)):
        split = "test" if folder.name == TEST_VIDEOS_NAME else "train"
        metadata = {v.path.name: {"label": v.label, "split": split, "original": v.original}
                    for v in summary.videos if v.path.parent == folder}
        write_json_atomic(folder / METADATA_NAME, metadata)
        if split == "train":
            summary.part_dirs.append(folder)
        else:
            summary.test_dir = folder
    if preview is not None:
        summary.preview = write_preview(preview, *results[0][1])
    return summary


def _film(scene: Scene, portraits: list[np.ndarray], paths: list[Path], rng: np.random.Generator, width: int,
          height: int, fps: float, frames: int) -> None:
    """Write one video per portrait (the real one first), all filmed with the scene's camera."""
    scenes = [scene.compose(p) for p in portraits]
    with ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(p)) for p in paths]
        writers = [_H264Writer(t, fps, width, height) for t in temps]
        _render(scenes, scene.camera, rng, width, height, frames, writers)
        for writer in writers:
            writer.close()


def _face_box_in_frame(scene: Scene, t: float) -> np.ndarray:
    """The landmarks' bounding box ``[x1, y1, x2, y2]`` in frame pixels at time fraction ``t``."""
    matrix = scene.camera.matrix(t)
    points = (scene.landmarks + np.float32(scene.offset)) @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


# ---- two people in one video -------------------------------------------------------------------------
TWO_PERSON_NAME = "two_person"  # the folder of two-person videos, next to the parts


class _FrameList:
    """A writer that keeps the frames (one half of a two-person frame)."""

    def __init__(self):
        self.frames: list[np.ndarray] = []

    def write(self, rgb: np.ndarray) -> None:
        self.frames.append(rgb)


def _film_half(rng: np.random.Generator, identity: Identity, identities: tuple[Identity, ...], width: int,
               height: int, frames: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """One person filmed alone in a ``width`` x ``height`` frame: (real frames, face-swapped frames, swap source)."""
    scene = _make_scene(rng, identity, width, height, test=True)
    recipe = draw_recipe(rng, "face_swap", identity, identities)
    fake = make_fake_portrait(scene.portrait, scene.landmarks, scene.face_size_px, recipe)
    real_frames, fake_frames = _FrameList(), _FrameList()
    _render([scene.compose(scene.portrait), scene.compose(fake)], scene.camera, rng, width, height, frames,
            [real_frames, fake_frames])
    return real_frames.frames, fake_frames.frames, recipe.describe()


def generate_two_person_videos(out_dir: str | os.PathLike, scenes: int = 1, seconds: float = 3.0, fps: float = 25,
                               size: tuple[int, int] = (640, 360), seed: int = 0,
                               progress: bool = True) -> list[GeneratedVideo]:
    """``out_dir/two_person/``: per scene three videos of the same two people side by side, each filmed by
    its own camera: both real, the left one face-swapped, the right one face-swapped.

    ``metadata.json`` gives the video label (FAKE when one person is swapped) and, under ``persons``, each
    person's side (``left``: x < width / 2), label and identity. Same arguments, same bytes.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    width, height = (int(v) for v in size)
    half = (width // 4) * 2  # each person's half of the frame, even for yuv420p
    if scenes < 1:
        raise SampleDatasetError(f"scenes={scenes}: ask for at least one two-person scene")
    if min(half, height) < MIN_SIDE_PX:
        raise SampleDatasetError(f"size {width}x{height}: each person gets half the width, which must be at least "
                                 f"{MIN_SIDE_PX} px; use e.g. --size 640x360")
    frames = _check_arguments(out_dir, 1, 1, seconds, fps, (2 * half, height), 0, 1, seed)
    folder = out_dir / TWO_PERSON_NAME
    names_rng = np.random.default_rng([seed, 4])
    names = ["".join(names_rng.choice(ID_LETTERS, 10)) + ".mp4" for _ in range(3 * scenes)]
    meta_path = folder / METADATA_NAME
    if meta_path.is_file():
        try:
            listed = sorted(json.loads(meta_path.read_text()))
        except (OSError, ValueError):
            listed = None
        if listed != sorted(names):
            raise SampleDatasetError(f"{meta_path} belongs to other two-person videos (other seed or count); pass "
                                     f"an empty OUT_DIR or remove {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    identities = load_identities()
    people = sorted({person_of(i) for i in identities})
    videos: list[GeneratedVideo] = []
    metadata: dict[str, dict] = {}
    with tqdm(total=3 * scenes, desc="two-person videos", unit="video", disable=not progress) as bar:
        for index in range(scenes):
            rng = np.random.default_rng([seed, 3, index])
            # one identity of each person, left and right alternating per scene
            left_person, right_person = people[index % 2], people[(index + 1) % 2]
            chosen = []
            for person in (left_person, right_person):
                options = [i for i in identities if person_of(i) == person]
                chosen.append(options[int(rng.integers(len(options)))])
            left_real, left_fake, left_source = _film_half(rng, chosen[0], identities, half, height, frames)
            right_real, right_fake, right_source = _film_half(rng, chosen[1], identities, half, height, frames)
            variants = (("REAL", "REAL", left_real, right_real), ("FAKE", "REAL", left_fake, right_real),
                        ("REAL", "FAKE", left_real, right_fake))
            for (left_label, right_label, left, right), name in zip(variants, names[3 * index:3 * index + 3]):
                path = folder / name
                with atomic_path(path) as tmp:
                    writer = _H264Writer(tmp, fps, 2 * half, height)
                    for a, b in zip(left, right):
                        writer.write(np.concatenate([a, b], axis=1))
                    writer.close()
                label = "FAKE" if "FAKE" in (left_label, right_label) else "REAL"
                kind = "face_swap" if label == "FAKE" else "real"
                videos.append(GeneratedVideo(path, label, None, kind, f"{chosen[0].name}+{chosen[1].name}"))
                metadata[name] = {"label": label, "split": "test", "original": None, "persons": [
                    {"side": "left", "label": left_label, "identity": chosen[0].name,
                     **({"method": left_source} if left_label == "FAKE" else {})},
                    {"side": "right", "label": right_label, "identity": chosen[1].name,
                     **({"method": right_source} if right_label == "FAKE" else {})}]}
                bar.update(1)
    write_json_atomic(meta_path, metadata)
    return videos


# ---- preview ---------------------------------------------------------------------------------------
PREVIEW_TILE_WIDTH_PX = 480  # wider frames are shrunk in the contact sheet


def write_preview(path: str | os.PathLike, videos: list[Path], captions: list[str], frame_index: int,
                  face_box: np.ndarray) -> Path:
    """Contact sheet of one frame of a real video and its fakes, as decoded from the written files.

    Columns: the real video, then each fake. Rows: the frame; a close-up of the face; |video - real| x4.
    """
    frames = [dict(iter_frames(v, [frame_index]))[frame_index] for v in videos]
    height, width = frames[0].shape[:2]
    tile_w = min(width, PREVIEW_TILE_WIDTH_PX)
    tile_h = int(round(height * tile_w / width))
    x1, y1, x2, y2 = crop_box(face_box, frames[0].shape, margin=0.5)
    close_w = min(tile_w, int(round(tile_h * (x2 - x1) / max(y2 - y1, 1))))
    real = frames[0].astype(np.int16)
    columns = []
    for index, (frame, caption) in enumerate(zip(frames, captions)):
        close_up = cv2.resize(frame[y1:y2, x1:x2], (close_w, tile_h), interpolation=cv2.INTER_CUBIC)
        left = (tile_w - close_w) // 2
        close_up = cv2.copyMakeBorder(close_up, 0, 0, left, tile_w - close_w - left, cv2.BORDER_CONSTANT)
        difference = np.clip(np.abs(frame.astype(np.int16) - real) * 4, 0, 255).astype(np.uint8)
        tiles = [(frame, caption), (close_up, "face close-up"),
                 (difference, "|FAKE - REAL| x4" if index else "|REAL - REAL| = 0")]
        columns.append(np.concatenate([_label(cv2.resize(t, (tile_w, tile_h), interpolation=cv2.INTER_AREA), text)
                                       for t, text in tiles], axis=0))
    sheet = cv2.cvtColor(np.concatenate(columns, axis=1), cv2.COLOR_RGB2BGR)
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", sheet)
    if not ok:
        raise SampleDatasetError(f"cannot encode the preview as {path.suffix!r}; pass a .png path")
    try:
        write_bytes_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise SampleDatasetError(f"cannot write the preview {path} ({exc}); pass a path in a writable folder") from None
    return path


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    scale = max(0.4, image.shape[0] / 720)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), (255, 255, 255), 1)
    return out


# ---- CLI -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_data.make_sample_dataset",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="DATA_ROOT to create (gets dfdc_train_part_*/ and test_videos/)")
    parser.add_argument("--parts", type=int, default=2, help="number of dfdc_train_part_<k> folders")
    parser.add_argument("--reals-per-part", type=int, default=4, help="real videos per part")
    parser.add_argument("--fakes-per-real", type=int, default=2, help="fakes made from each real video")
    parser.add_argument("--seconds", type=float, default=3.0, help="video length in seconds")
    parser.add_argument("--fps", type=float, default=25, help="frames per second")
    parser.add_argument("--size", type=_parse_size, default=(640, 360), help="WIDTHxHEIGHT in pixels")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--test-videos", type=int, default=12, help="videos in test_videos/ (half of them fake)")
    parser.add_argument("--preview", type=Path, default=None, help="write a contact sheet PNG of a real and its fakes")
    parser.add_argument("--two-person", type=int, default=0, metavar="SCENES",
                        help="also write two_person/: per scene a two-person real and two fakes in which one of "
                             "the two is face-swapped (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset made in OUT_DIR with other arguments (same arguments need no flag)")
    parser.add_argument("--workers", type=int, default=None, help="scenes filmed in parallel (default: up to 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        summary = generate_sample_dataset(args.out_dir, parts=args.parts, reals_per_part=args.reals_per_part,
                                          seconds=args.seconds, fps=args.fps, size=args.size, seed=args.seed,
                                          test_videos=args.test_videos, fakes_per_real=args.fakes_per_real,
                                          preview=args.preview, progress=not args.no_progress,
                                          overwrite=args.overwrite, workers=args.workers)
        if args.two_person:
            generate_two_person_videos(args.out_dir, args.two_person, seconds=args.seconds, fps=args.fps,
                                       size=args.size, seed=args.seed, progress=not args.no_progress)
    except SampleDatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
