"""Face photographs shipped inside installed packages, their dlib landmarks, and the two fake makers.

The sample-dataset generator animates these photographs into videos. Everything expensive here (the
dlib detector, the 68-point predictor) runs once per identity per process; the fake makers work on a
portrait already scaled to the size it has in the video, so they run once per video, never per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from core.blending import blend, moved_face, resample, soft_hull_mask
from faces.landmarks import shape_predictor_path

# dlib's 68-point scheme: 0-16 jaw, 17-26 eyebrows (BROWS), 27-35 nose, 36-47 eyes, 48-67 mouth

# The crop around a face that becomes the "person" in a video, in dlib face-box sides from the
# landmarks' centre: hair above, shoulders below (enough to run past the bottom of the frame), and
# clear of anything else face-like in the photograph (scikit-image's astronaut has a face-like emblem
# on her suit about 2.3 face sides below her face centre).
PORTRAIT_HALF_WIDTH = 1.3
PORTRAIT_ABOVE = 1.3
PORTRAIT_BELOW = 2.0


class FacePhotoError(RuntimeError):
    """A bundled face photograph or the dlib model cannot be found or used."""


@dataclass(frozen=True)
class Identity:
    """A person: a head-and-shoulders crop of a photograph and its dlib 68 landmarks."""

    name: str
    portrait: np.ndarray  # RGB uint8, face centred horizontally, shoulders at the bottom
    landmarks: np.ndarray  # (68, 2) float32, portrait pixels
    face_size_px: float  # side of the dlib face box in portrait pixels


def _astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[..., :3])


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


# Real face photographs that ship with scikit-image and matplotlib (no download needed).
PHOTOS = {"astronaut": _astronaut, "grace_hopper": _grace_hopper}


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))


def _portrait(name: str, photo: np.ndarray) -> Identity:
    detector, predictor = _dlib_models()
    rects, scores, _ = detector.run(photo, 1)
    if not rects:
        raise FacePhotoError(f"dlib finds no face in the bundled photograph {name!r}; the installed "
                             f"scikit-image / matplotlib sample data is not the expected one")
    rect = rects[int(np.argmax(scores))]
    shape = predictor(photo, rect)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    face_size = float(max(rect.width(), rect.height()))
    cx, cy = landmarks.mean(axis=0)
    x0, x1 = int(round(cx - PORTRAIT_HALF_WIDTH * face_size)), int(round(cx + PORTRAIT_HALF_WIDTH * face_size))
    y0, y1 = int(round(cy - PORTRAIT_ABOVE * face_size)), int(round(cy + PORTRAIT_BELOW * face_size))
    # Pad by reflection where the crop runs past the photograph's edge.
    pad = max(0, -x0, -y0, x1 - photo.shape[1], y1 - photo.shape[0])
    padded = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REFLECT101) if pad else photo
    portrait = np.ascontiguousarray(padded[y0 + pad:y1 + pad, x0 + pad:x1 + pad])
    return Identity(name, portrait, landmarks - np.float32([x0, y0]), face_size)


@cache
def load_identities() -> tuple[Identity, ...]:
    """Every bundled identity, each also mirrored (landmarks found again by dlib on the mirror image).

    Returned in a fixed order: ``[astronaut, astronaut_mirrored, grace_hopper, grace_hopper_mirrored]``.
    """
    identities = []
    for name, load in PHOTOS.items():
        photo = load()
        identities.append(_portrait(name, photo))
        identities.append(_portrait(name + "_mirrored", np.ascontiguousarray(photo[:, ::-1])))
    return tuple(identities)


def person_of(identity: Identity) -> str:
    return identity.name.removesuffix("_mirrored")


# ---- geometry helpers ---------------------------------------------------------------------------
def scaled(identity: Identity, face_size_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The portrait resized so that its face box side is ``face_size_px``, and its landmarks."""
    height, width = identity.portrait.shape[:2]
    factor = face_size_px / identity.face_size_px
    size = (max(8, int(round(width * factor))), max(8, int(round(height * factor))))
    scale = np.float32([size[0] / width, size[1] / height])
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(identity.portrait, size, interpolation=interpolation), identity.landmarks * scale


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], erode_px: float, blur_px: float,
              brow_lift: float = 0.0) -> np.ndarray:
    """Soft face-hull mask (float32 0..1): the self-blend module's, shared with training."""
    return soft_hull_mask(landmarks, shape, erode_px, blur_px, brow_lift)


def _piecewise_affine(source: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
                      out_shape: tuple[int, int]) -> np.ndarray:
    """``source`` warped so that ``source_points`` land on ``target_points``.

    Inside the landmarks' hull each Delaunay triangle gets its own affine map (a piecewise-affine
    warp); outside it one similarity transform fitted to all points keeps the texture continuous.
    """
    from scipy.spatial import Delaunay

    height, width = out_shape
    similarity, _ = cv2.estimateAffinePartial2D(target_points, source_points)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = similarity[0, 0] * xs + similarity[0, 1] * ys + similarity[0, 2]
    map_y = similarity[1, 0] * xs + similarity[1, 1] * ys + similarity[1, 2]
    triangulation = Delaunay(target_points.astype(np.float64))
    x0, y0 = np.floor(target_points.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(target_points.max(axis=0)).astype(int) + 1
    x1, y1 = min(x1, width), min(y1, height)
    gy, gx = np.mgrid[y0:y1, x0:x1]
    pixels = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)
    simplex = triangulation.find_simplex(pixels)
    inside = simplex >= 0
    transform = triangulation.transform[simplex[inside]]
    partial = np.einsum("nij,nj->ni", transform[:, :2], pixels[inside] - transform[:, 2])
    barycentric = np.concatenate([partial, 1 - partial.sum(axis=1, keepdims=True)], axis=1)
    corners = source_points.astype(np.float64)[triangulation.simplices[simplex[inside]]]  # (n, 3, 2)
    mapped = np.einsum("ni,nij->nj", barycentric, corners)
    rows, cols = gy.ravel()[inside], gx.ravel()[inside]
    map_x[rows, cols] = mapped[:, 0]
    map_y[rows, cols] = mapped[:, 1]
    return cv2.remap(source, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255.0


def _colour_transfer(source: np.ndarray, target: np.ndarray, region: np.ndarray, strength: float) -> np.ndarray:
    """Move ``source``'s Lab mean/std inside ``region`` towards ``target``'s by ``strength`` (0..1).

    Strength below 1 leaves the residual colour mismatch that real face swaps show.
    """
    src_lab, dst_lab = _to_lab(source), _to_lab(target)
    weights = region[..., None]
    total = max(float(region.sum()), 1.0)
    src_mean = (src_lab * weights).sum(axis=(0, 1)) / total
    dst_mean = (dst_lab * weights).sum(axis=(0, 1)) / total
    src_std = np.sqrt(((src_lab - src_mean) ** 2 * weights).sum(axis=(0, 1)) / total) + 1e-3
    dst_std = np.sqrt(((dst_lab - dst_mean) ** 2 * weights).sum(axis=(0, 1)) / total) + 1e-3
    matched = (src_lab - src_mean) / src_std * dst_std + dst_mean
    return _from_lab(src_lab + strength * (matched - src_lab))


@dataclass(frozen=True)
class FakeRecipe:
    """How one fake is made; drawn at random per fake video."""

    kind: str  # "face_swap" or "self_blend"
    source: Identity | None  # the other identity for face_swap
    resample: float  # down/up-sampling factor of the pasted face
    colour_strength: float  # face_swap: how far the colour is matched (1 = fully)
    colour_shift: tuple[float, float, float]  # self_blend: RGB offset added to the pasted face
    scale: float  # self_blend: scale of the pasted face about its centre
    shift: tuple[float, float]  # self_blend: shift in face sizes
    erode: float  # hull erosion in face sizes
    blur: float  # mask feather in face sizes

    def describe(self) -> str:
        if self.kind == "face_swap":
            return f"face swap ({person_of(self.source)})"
        return "self-blended"


def draw_recipe(rng: np.random.Generator, kind: str, target: Identity,
                identities: tuple[Identity, ...]) -> FakeRecipe:
    """Random parameters for one fake of ``target``; ``face_swap`` takes its face from another person."""
    others = [i for i in identities if person_of(i) != person_of(target)]
    source = others[int(rng.integers(len(others)))] if kind == "face_swap" else None
    shift = rng.uniform(0.015, 0.035, 2) * rng.choice([-1.0, 1.0], 2)
    colour = rng.uniform(4, 10, 3) * rng.choice([-1.0, 1.0], 3)
    return FakeRecipe(kind=kind, source=source,
                      resample=float(rng.uniform(0.4, 0.6) if kind == "face_swap" else rng.uniform(0.5, 0.7)),
                      colour_strength=float(rng.uniform(0.55, 0.8)),
                      colour_shift=tuple(float(c) for c in colour),
                      scale=float(rng.uniform(1.03, 1.07)),
                      shift=(float(shift[0]), float(shift[1])),
                      erode=float(rng.uniform(0.03, 0.07)),
                      blur=float(rng.uniform(0.025, 0.045)))


def make_fake_portrait(portrait: np.ndarray, landmarks: np.ndarray, face_size_px: float,
                       recipe: FakeRecipe) -> np.ndarray:
    """The fake version of a scaled portrait: only pixels inside the (soft) face hull change."""
    shape = portrait.shape[:2]
    mask = hull_mask(landmarks, shape, recipe.erode * face_size_px, recipe.blur * face_size_px,
                     brow_lift=0.08 if recipe.kind == "face_swap" else 0.0)
    if recipe.kind == "face_swap":
        # Scale the source so its face is about the target's size before warping (sharper warp).
        src_portrait, src_points = scaled(recipe.source, face_size_px)
        warped = _piecewise_affine(src_portrait, src_points, landmarks, shape)
        region = hull_mask(landmarks, shape, 0.1 * face_size_px, 0)
        face = _colour_transfer(warped, portrait, region, recipe.colour_strength)
    elif recipe.kind == "self_blend":
        face = moved_face(portrait, landmarks.mean(axis=0), recipe.scale,
                          tuple(np.float64(recipe.shift) * face_size_px), recipe.colour_shift)
    else:
        raise ValueError(f"unknown fake kind {recipe.kind!r}; use 'face_swap' or 'self_blend'")
    face = resample(np.clip(face, 0, 255).astype(np.float32), recipe.resample)
    return blend(portrait, face, mask)
