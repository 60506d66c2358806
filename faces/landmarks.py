"""dlib's 68-point landmark model (shipped inside the face_recognition_models package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def shape_predictor_path() -> Path:
    """dlib's 68-point model inside the face_recognition_models package (found without importing
    that package, which needs the pkg_resources that new setuptools dropped)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed (it ships dlib's "
                           "shape_predictor_68_face_landmarks.dat); install the pinned requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall face_recognition_models")
    return path
