"""Grad-CAM heatmaps of the face classifier (Selvaraju et al., ICCV 2017) over face crops.

The map is taken at the encoder's last convolutional stage (``forward_features`` of any timm encoder):
each channel weighted by the mean gradient of the FAKE logit over it, summed, ReLU, bilinearly
upsampled to the model input, cut back to the crop (the zero padding the classifier input adds around a
non-square crop is removed) and scaled to [0, 1] by its maximum. An ensemble's maps are averaged at crop
resolution. Red: the regions that pushed the score towards FAKE.

Written here rather than taken from the ``grad-cam`` package: the computation is a few lines on the
classifier's ``forward_with_features`` (no hooks), while that package depends on ``opencv-python``
(the GUI build, which clashes with this project's ``opencv-python-headless``) and ``ttach``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.geometry import face_to_model_input
from core.input_spec import place_face, to_model_batch

__all__ = ["grad_cam", "explain_faces", "overlay_heatmap", "content_box"]


def content_box(crop_shape: Sequence[int], size: int, resize_rounding: str = "round") -> tuple[int, int, int, int]:
    """Where a crop of ``crop_shape`` lands in its ``size`` x ``size`` model input: (top, left, height, width)."""
    probe = np.ones(tuple(crop_shape[:2]), dtype=np.uint8)
    placed = face_to_model_input(probe, size, resize_rounding)
    rows, cols = np.flatnonzero(placed.any(axis=1)), np.flatnonzero(placed.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def grad_cam(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the FAKE logit for a normalised batch ``(N, 3, S, S)``: ``(N, S, S)`` in [0, 1]."""
    with torch.enable_grad():
        inputs = inputs.detach().requires_grad_(True)
        logits, features = model.forward_with_features(inputs)
        gradients, = torch.autograd.grad(logits[:, 0].sum(), features)
    weights = gradients.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach().float()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
    return cam / peak


def explain_faces(models, crops: Sequence[np.ndarray], device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32, resize_rounding: str = "round") -> list[np.ndarray]:
    """Per crop (RGB uint8, any shape) its heatmap at the crop's resolution (float32 in [0, 1]), averaged
    over ``models`` (``LoadedModel``s: each at its own input spec, with ``resize_rounding``)."""
    maps = [np.zeros(c.shape[:2], dtype=np.float32) for c in crops]
    if not crops:
        return maps
    for loaded in models:
        spec = loaded.input_spec.replace(resize_rounding=resize_rounding)
        size = spec.size_px
        tensor = to_model_batch([place_face(c, spec) for c in crops], spec, device, dtype)
        cams = grad_cam(loaded.model, tensor).cpu().numpy()
        for i, crop in enumerate(crops):
            top, left, height, width = content_box(crop.shape, size, resize_rounding)
            region = cams[i, top:top + height, left:left + width]
            maps[i] += cv2.resize(region, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    return [m / len(models) for m in maps]


def overlay_heatmap(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The crop (RGB uint8) with the heatmap blended over it in the jet colour map (RGB uint8)."""
    colour = cv2.applyColorMap(np.clip(heatmap * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(crop, 1 - alpha, colour, alpha, 0)


def write_png(path, rgb: np.ndarray) -> None:
    """An RGB uint8 image as a PNG, written atomically (the report's images and the heatmaps)."""
    from core.files import write_bytes_atomic

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


def most_fake_faces(pred, per_person: int) -> dict[int, list[int]]:
    """Per person of a prediction, the indices of its ``per_person`` highest-scoring faces."""
    scores = pred.mean_face_scores
    chosen = {}
    for person in range(pred.n_persons):
        faces = np.flatnonzero(pred.face_persons == person)
        chosen[person] = [int(i) for i in faces[np.argsort(-scores[faces], kind="stable")[:per_person]]]
    return chosen


def explain_prediction(predictor, pred, per_person: int = 3) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Grad-CAM of each person's most fake faces under the image models: ``{person: [(face index, heatmap), ...]}``
    (none when only clip models were run).
    Needs the prediction's crops (``VideoPredictor(keep_face_crops=True)``)."""
    image_models = [m for m in predictor.models if not m.input_spec.is_clip]  # clip models score no face
    if not pred.face_crops or not image_models:
        return {}
    chosen = most_fake_faces(pred, per_person)
    order = [i for faces in chosen.values() for i in faces]
    maps = explain_faces(image_models, [pred.face_crops[i] for i in order], predictor.device, predictor.dtype,
                         predictor.options.resize_rounding)
    by_face = dict(zip(order, maps))
    return {person: [(i, by_face[i]) for i in faces] for person, faces in chosen.items()}


def write_heatmaps(folder, pred, heatmaps: dict[int, list[tuple[int, np.ndarray]]]) -> dict[int, list[tuple[int, str]]]:
    """Each heatmap overlaid on its crop as ``folder/person<P>_frame<F>_face<I>.png``;
    returns ``{person: [(face index, file name), ...]}``."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[int, list[tuple[int, str]]] = {}
    for person, faces in heatmaps.items():
        for index, heat in faces:
            name = f"person{person}_frame{int(pred.face_frame_indices[index])}_face{index}.png"
            write_png(folder / name, overlay_heatmap(pred.face_crops[index], heat))
            written.setdefault(person, []).append((index, name))
    return written
