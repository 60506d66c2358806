"""The predictor's options in one frozen object, and named presets resolved in one place.

``resolve_options(preset, **overrides)`` is the only way a preset becomes options (like timm's
``create_model``): the preset's values first, then the caller's overrides, then the values a preset
derives from the others (the winner's face cap follows ``frames_per_video``). Every option is one
field of :class:`PredictorOptions`; its ``option(...)`` line carries the default, the help text and
the accepted values (a tuple, or a registry: the face detectors, the aggregation strategies, the model
combinations, the video rules), from which ``predict_folder.py`` builds its command-line flags, so
adding an option is one line here (plus the code that reads it).

Presets (:data:`PRESETS`, a registry: a new one is one ``PRESETS.register`` line):

* ``default``: this project's faster settings;
* ``winner``: the DFDC winning submission's predictor, option by option (see docs/prediction.md,
  "Presets and options"); with the winner's checkpoint it reproduces the original's probabilities;
* ``winner-fast``: the winner's frames, boxes, crops and rules with the classifier's faster arithmetic
  (batch normalisation folded, classifier batches sized for the device): the original's answers to
  float rounding (about 1e-6), not bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.devices import PRECISION_CHOICES
from core.options import option, option_choices
from core.registry import Registry
from faces.detectors import DEFAULT_DETECTOR, DETECTORS
from faces.track_clips import DEFAULT_MAX_FRAMES
from models.weights import WINNER_CHECKPOINTS
from prediction.aggregation import COMBINATIONS, STRATEGIES, VIDEO_RULES
from prediction.families import FAMILY_POOLS, parse_family_weights

DEFAULT_PRESET = "default"


def _auto_or_float(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected 'auto' or a number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"expected a positive factor, got {text!r}")
    return value


def _auto_or_int(text: str) -> int | None:
    return None if text == "auto" else int(text)


def _all_or_int(text: str) -> int | None:
    return None if text == "all" else int(text)


@dataclass(frozen=True)
class PredictorOptions:
    """How a video becomes a probability. Build one with :func:`resolve_options`."""

    # -- frames --
    frames_per_video: int = option(32, "frames sampled per video, evenly spaced")
    frame_sampling: str = option(
        "round", "how the evenly spaced frame positions become indices: round to the nearest frame, or "
        "truncate (the winner's np.linspace(..., dtype=int))", choices=("round", "truncate"))
    # -- face detection --
    detector: str = option(DEFAULT_DETECTOR, "face detector (faces.detectors.DETECTORS)", choices=DETECTORS)
    detector_scale: float | str = option(
        "auto", "MTCNN input scale: 'auto' (2x below 300 px, 1x to 1000, 0.5x above, 0.33x above 1900) "
        "or a factor", parse=_auto_or_float, metavar="auto|FACTOR")
    detector_resize: str = option(
        "cv2", "how frames are scaled for MTCNN: cv2 (area filter down, linear up, size rounded) or pil "
        "(PIL's default filter, size truncated: the winner halved frames this way)", choices=("cv2", "pil"))
    detector_batch_size: int | None = option(
        None, "frames per MTCNN call ('auto': 8 on the CPU, 32 on a GPU; batches are not bit-identical "
        "to single frames: the winner called it per frame)", parse=_auto_or_int, metavar="auto|N")
    face_order: str = option(
        "score", "order of a frame's faces: by detector score, or by box area largest first (MTCNN's "
        "select_largest, the winner's)", choices=("score", "area"))
    min_face_size_px: int = option(20, "MTCNN minimum face size (detector px)", flag="--min-face-size")
    detector_fast_pooling: bool = option(
        True, "MTCNN max pooling as row then column maxima on the CPU (bit-identical boxes, faster)")
    detector_fast_resampling: bool = option(
        True, "MTCNN's area resampling from integral images on the CPU, all crops at once (bit-identical "
        "boxes, faster)")
    detector_channels_last_crops: bool = option(
        True, "MTCNN's second and third networks score their crops channels-last on the CPU (faster; boxes move "
        "by float rounding, up to about 2e-4 px: off in the winner preset, which gives the original's boxes bit for bit)")
    # -- faces to model input --
    resize_rounding: str = option(
        "round", "isotropic resize: the shorter side's new length rounded, or truncated (the winner's)",
        choices=("round", "truncate"))
    max_faces: int | None = option(
        None, "faces scored per video, the first ones in frame order ('all', or N; the winner: "
        "4 * frames - 1)", parse=_all_or_int, metavar="all|N")
    # -- classifier --
    classifier_batch_size: int | None = option(
        None, "faces per classifier call ('auto': 8 on the CPU, 64 on a GPU)", parse=_auto_or_int,
        metavar="auto|N")
    channels_last: bool = option(
        True, "classifier weights in channels-last memory format (faster; scores move by about 1e-7)")
    fold_batchnorm: bool = option(
        True, "batch normalisation folded into the convolution before it (about 1.3x faster EfficientNets on the "
        "CPU; scores move by float rounding, about 1e-6: off in the winner preset)")
    tta: bool = option(False, "also average the scores of the horizontally flipped faces")
    calibration: str = option(
        "on", "apply each checkpoint's stored temperature to its video scores before the models are combined "
        "(on; a checkpoint without one is used as it is) or give the raw scores (off)", choices=("on", "off"))
    videos_in_flight: int | None = option(
        None, "videos predicted at once, each in its own thread from decoding to its score, torch's CPU threads "
        "divided among them ('auto': one per torch CPU thread on the CPU, 1 on a GPU; 1: one video at a time, "
        "the next one decoded ahead and the previous one classified meanwhile); the scores do not depend on it",
        parse=_auto_or_int, metavar="auto|N")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option("auto", "auto: fp16 on a GPU, fp32 on the CPU (none = fp32, as in training configs)",
                            choices=PRECISION_CHOICES)
    # -- aggregation --
    strategy: str = option("confident", "aggregation of a video's face scores, per model",
                           choices=STRATEGIES)
    combine: str = option("mean", "combination of the models' video probabilities", choices=COMBINATIONS)
    aggregate: str = option(
        "per-person", "video score from the face scores: winner (every face of every frame pooled, the DFDC "
        "winner's rule) or per-person (faces linked into tracks, the strategy per person, the video gets its "
        "most fake person's score)", choices=VIDEO_RULES)
    track_min_faces: int | None = option(
        None, "tracks with fewer faces are dropped as detector false positives ('auto': a tenth of the sampled "
        "frames, at least 2; per-person only)", parse=_auto_or_int, metavar="auto|N")
    # -- clip (3D) models and the pooling of families --
    clip_chunks: int | None = option(
        4, "chunks of a person's face-track clip scored by each clip (3D) model, evenly spread over the track "
        "('all': every chunk)", parse=_all_or_int, metavar="all|N")
    clip_max_frames: int = option(
        DEFAULT_MAX_FRAMES, "video frames one clip region spans at most (the clips stage's --clip-max-frames: "
        "a track is cut into clips of this length, each with one region)")
    family_weights: str = option(
        "2d=0.5,3d=0.5", "weight of each family kind in a person's score (2d: image models, 3d: clip models; "
        "a kind without a score for a person is left out, the others renormalised)", metavar="KIND=W,...")
    family_pool: str = option("mean", "how the kinds' scores of a person are pooled: weighted mean of the "
                              "probabilities, or geometric (weighted mean of the log-odds)", choices=FAMILY_POOLS)

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            choices = option_choices(spec)
            value = getattr(self, spec.name)
            if choices is not None and value not in choices:
                raise ValueError(f"option {spec.name}={value!r} is not one of {', '.join(map(str, choices))}")
        if self.frames_per_video < 1:
            raise ValueError(f"option frames_per_video must be at least 1, got {self.frames_per_video}")
        for name in ("detector_batch_size", "classifier_batch_size", "videos_in_flight", "max_faces", "track_min_faces", "clip_chunks",
                     "clip_max_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"option {name} must be at least 1 (or 'auto'/'all'), got {value}")
        if self.detector_scale != "auto" and (isinstance(self.detector_scale, str) or self.detector_scale <= 0):
            raise ValueError(f"option detector_scale must be 'auto' or a positive factor, got {self.detector_scale!r}")
        self.family_weight_map  # noqa: B018 - checks the weights (ValueError naming what is wrong)

    @property
    def family_weight_map(self) -> dict[str, float]:
        """``family_weights`` as ``{kind: weight}`` (``prediction.families.parse_family_weights``)."""
        return dict(parse_family_weights(self.family_weights))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OPTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in dataclasses.fields(PredictorOptions))


@dataclass(frozen=True)
class Preset:
    """Option values (constants, or functions of the other resolved options) and default checkpoints;
    registered in :data:`PRESETS` under its name."""

    description: str
    values: dict[str, Any] = field(default_factory=dict)
    checkpoint_names: tuple[str, ...] = ()  # looked for in the weights folder when no model is given


PRESETS: Registry[Preset] = Registry("preset")
PRESETS.register("default", Preset("this project's faster settings"))
PRESETS.register("winner", Preset(
    "the DFDC winning submission's predictor",
    {
        "frames_per_video": 32,
        "frame_sampling": "truncate",
        "detector": "mtcnn",
        "detector_scale": 0.5,
        "detector_resize": "pil",
        "detector_batch_size": 1,
        "detector_channels_last_crops": False,
        "face_order": "area",
        "min_face_size_px": 20,
        "resize_rounding": "truncate",
        # the original fills a batch of 4 * frames faces and stops one short of it
        "max_faces": lambda o: 4 * o["frames_per_video"] - 1,
        # and scores all of a video's faces in one classifier call, NCHW
        "classifier_batch_size": lambda o: o["max_faces"] or 4 * o["frames_per_video"] - 1,
        # the original permutes its NHWC face array into an NCHW view without copying it, so torch runs its
        # convolutions channels-last; channels-last weights do the same arithmetic (its scores to the bit)
        "channels_last": True,
        # the original computes each batch normalisation as its own operation
        "fold_batchnorm": False,
        "tta": False,
        # the winner's files hold no temperature: "on" leaves their scores as they are (a temperature fitted
        # later with python -m training.calibrate --output is applied)
        "calibration": "on",
        "precision": "auto",
        "strategy": "confident",
        "combine": "mean",
        "aggregate": "winner",
    },
    checkpoint_names=tuple(f.name for f in WINNER_CHECKPOINTS)))
PRESETS.register("winner-fast", Preset(
    "the winner's predictor with the classifier's faster arithmetic (answers to about 1e-6)",
    {**PRESETS.get("winner").values, "fold_batchnorm": True, "classifier_batch_size": None},
    checkpoint_names=PRESETS.get("winner").checkpoint_names))


def get_preset(name: str) -> Preset:
    """The registered preset ``name`` (a ValueError naming the known ones, else)."""
    return PRESETS.get(name)


def resolve_options(preset: str = DEFAULT_PRESET, **overrides: Any) -> PredictorOptions:
    """The preset's options with ``overrides`` (option name -> value) on top."""
    unknown = sorted(set(overrides) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(f"unknown predictor option(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}")
    values = {**get_preset(preset).values}
    values.update(overrides)
    resolved = {spec.name: spec.default for spec in dataclasses.fields(PredictorOptions)}
    resolved.update({k: v for k, v in values.items() if not callable(v)})
    for name, value in values.items():  # derived values last, in the preset's order
        if callable(value):
            resolved[name] = value(resolved)
    return PredictorOptions(**resolved)
