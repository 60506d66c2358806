"""Inference library: one probability per video from an ensemble of face classifiers.

For each video: N evenly spaced frames decoded in one pass, MTCNN on all of them in batched calls
(detector scale by the resolution rule shared with preprocessing), every face cropped with the training margin and
brought to the model size with the training geometry, each model run on the same face batch, the
face scores aggregated per model (``confident``, ``mean`` or ``max``) and the models combined. The
aggregation option says over which faces: ``winner`` pools every face of the video (the DFDC winner's
rule); ``per-person`` links the faces into tracks (``faces.tracks``; short tracks dropped as
detector false positives), applies the same rule to each person's faces and gives the video its most
fake person's score, so one swapped face among real ones is not averaged away. Both values are kept
on every prediction.

The ensemble may mix image (2D) and clip (3D) checkpoints (``prediction.families``): image models score
the face crops, clip models chunks of each person's face-track clip (``prediction.clip_scoring``: the
clips stage's region, cut from consecutive frames in one more decoding pass). Per person each kind's
score (its models combined), then the kinds pooled by ``--family-weights`` (default 50:50), then the
video rule. With ``--calibration on`` each model's score (per video and per person) first goes through its
checkpoint's temperature, 2D and 3D alike (:class:`ScoreRules`); ``raw_probability`` is the same pipeline
without the temperatures.
How each step is done is set by one :class:`prediction.options.PredictorOptions` (``resolve_options``:
the ``default`` preset, or ``winner``, the DFDC winning submission's predictor step by step).

A video that cannot be read (no frame decodes: a corrupt, truncated, empty or non-video file), in
which no face is found, or (clip models only) where no track spans one chunk, gets 0.5 (the
competition's neutral answer) with the reason in ``VideoPrediction.fallback_reason``; it never stops a run. Any other exception is a bug and is raised;
``predict_on_video_set(..., keep_going=True)`` logs it with its traceback, gives that video 0.5 with
``fallback_kind="error"`` and goes on.

``VideoPredictor`` wraps load + preprocess + run for one video (like detectron2's DefaultPredictor);
``predict_on_video_set`` runs it over many videos: with ``videos_in_flight`` above 1 (the CPU's default)
several videos at once, each in its own thread from decoding to its score, torch's CPU threads divided
among them (so that the cores are busy while one video is in Python or in the decoder); with 1, one video
at a time, the next one decoded in a reader thread and the previous one classified in a classifier thread.
The threads share only read-only state (the detector's and the models' weights, the options), and each
torch operation runs with the same number of threads for the whole run, so a video's score does not
depend on the order or the overlap of the videos (``tests/prediction/test_in_flight.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from core.calibration import apply_temperature
from core.devices import resolve_device, resolve_precision
from core.geometry import crop_face
from core.input_spec import InputSpec, place_face, to_model_batch
from core.video import DecodeCounts, VideoReadError, read_sampled_frames
from faces.detectors import DetectorSettings, build_detector
from faces.mtcnn import detector_scale
from faces.tracks import TrackOptions, link_faces
from models.batchnorm_folding import folded_if_equal
from models.checkpoints import CheckpointError, LoadedModel, load_model
from prediction.aggregation import STRATEGIES, VIDEO_RULES, combine_models
from prediction.clip_scoring import clip_crop_share, clip_geometry, cut_chunks, plan_chunks, score_clips
from prediction.families import FAMILY_KINDS, IMAGE_KIND, ModelItems, VideoInputs, kind_of, pool_families
from prediction.options import PredictorOptions, resolve_options

logger = logging.getLogger(__name__)

NEUTRAL_PROBABILITY = 0.5  # the answer that costs log(2) whatever the label
# faces per classifier call: a GPU wants large batches; on the CPU small ones stay in cache and run
# faster than a whole video's faces at once (measured with Lite0/B0 on 2 cores)
CLASSIFIER_BATCH_GPU = 64
CLASSIFIER_BATCH_CPU = 8
# the containers a folder prediction reads (any case: phones record .MOV); each is decoded in the tests
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# video formats left out on purpose (not tested here): a folder holding them gets a warning with the count
OTHER_VIDEO_SUFFIXES = (".flv", ".f4v", ".wmv", ".asf", ".mpg", ".mpeg", ".m2ts", ".mts", ".ts", ".3gp", ".3g2",
                        ".ogv", ".vob", ".rm", ".rmvb", ".divx")

# ---- results --------------------------------------------------------------------------------------------


@dataclass
class VideoPrediction:
    """The answer for one video and what it was made of."""

    path: Path
    probability: float
    frame_indices: list[int] = field(default_factory=list)  # sampled frames that decoded
    face_frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # per face [x1, y1, x2, y2, detector score], full-frame pixels, in face order
    face_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), dtype=np.float32))
    face_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (models, faces)
    model_probabilities: list[float] = field(default_factory=list)
    fallback_reason: str | None = None
    # "unreadable", "no_face", "no_clip" (clip models only, no track spans a chunk), or "error" (a bug,
    # only with keep_going)
    fallback_kind: str | None = None
    decode_warning: str | None = None  # set when the video decoded only partly (the frames that did were used)
    timings_s: dict[str, float] = field(default_factory=dict)  # decode / detect / classify / aggregate (s)
    # the scored crops (RGB uint8, training margin), in face order; only with keep_face_crops=True
    # (tens of MB per 1080p video: a caller that keeps many predictions empties the ones it will not show)
    face_crops: list[np.ndarray] = field(default_factory=list, repr=False)
    # the row name when the file name alone is ambiguous (several folders in one run: "folder/file.mp4")
    display_name: str | None = None
    # per face its person (a track of faces.tracks; -1: a dropped short track), and per person
    # its score (the strategy over its faces per model, the models combined)
    face_persons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    person_scores: list[float] = field(default_factory=list)
    aggregate: str = "winner"  # the rule that made ``probability``
    pooled_probability: float | None = None  # what each rule gives (the other one for comparison)
    per_person_probability: float | None = None
    # the families: per model its kind ("2d", "3d": prediction.families), per kind (and per model) each
    # person's score (None: no input of that kind for the person) and the pooled score; the clip
    # models' scored chunks. ``person_scores`` are the kinds pooled by the family weights.
    model_kinds: list[str] = field(default_factory=list)
    family_person_scores: dict[str, list[float | None]] = field(default_factory=dict)
    family_probabilities: dict[str, float | None] = field(default_factory=dict)
    model_person_scores: list[list[float | None]] = field(default_factory=list)
    chunks: list[ChunkScore] = field(default_factory=list)
    # what the video gets without any temperature (``--calibration off``); None: the same as ``probability``
    # (no model applied one, or a fallback)
    raw_probability: float | None = None

    @property
    def uncalibrated_probability(self) -> float:
        return self.probability if self.raw_probability is None else self.raw_probability

    @property
    def name(self) -> str:
        return self.display_name or self.path.name

    @property
    def n_faces(self) -> int:
        return int(self.face_frame_indices.size)

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None

    @property
    def n_persons(self) -> int:
        return len(self.person_scores)

    @property
    def mean_face_scores(self) -> np.ndarray:
        """Per face, the mean over the image models (the scores plotted in the report); NaN per face when
        only clip models scored (they score chunks, not faces)."""
        if self.face_scores.shape[0] == 0:
            return np.full(self.n_faces, np.nan)
        return self.face_scores.mean(axis=0) if self.face_scores.size else np.zeros(0)

    @property
    def frame_scores(self) -> dict[int, float]:
        """Per sampled frame with a face, the mean score of its faces (mean over the models)."""
        scores = self.mean_face_scores
        if self.face_scores.shape[0] == 0:
            return {}
        return {int(f): float(scores[self.face_frame_indices == f].mean())
                for f in np.unique(self.face_frame_indices)}


@dataclass(frozen=True)
class ChunkScore:
    """A clip model's score of one chunk of a person's face-track clip (``model``: its index among the
    predictor's models; ``frames``: the chunk's first and last video frame)."""

    model: int
    person: int
    frames: tuple[int, int]
    score: float


@dataclass(frozen=True)
class PooledScores:
    """One video's scores at every step of the pooling (``ScoreRules.pool``); None: no input."""

    model_pooled: list[float | None]  # per model, over every item
    model_person: list[list[float | None]]  # per model, per person
    kind_pooled: dict[str, float | None]  # per kind, the models combined
    kind_person: dict[str, list[float | None]]
    pooled: float | None  # the kinds pooled: the winner rule's score
    persons: list[float | None]  # the kinds pooled, per person


@dataclass
class DecodedVideo:
    """Sampled frames of one video, or why there are none."""

    path: Path
    frame_indices: list[int]
    frames: list[np.ndarray]
    error: str | None = None
    decode_s: float = 0.0
    warning: str | None = None  # a partly decodable video: how many of its header's frames decoded


@dataclass
class VideoFaces:
    """Every face found in the sampled frames, cropped with the training margin (RGB uint8)."""

    frame_indices: list[int]
    face_frame_indices: np.ndarray
    crops: list[np.ndarray]
    boxes: np.ndarray  # (faces, 5): [x1, y1, x2, y2, detector score]
    detect_s: float = 0.0
    frame_shape: tuple[int, ...] = ()  # of the decoded frames (where the clip models' regions are cut)


@dataclass
class DetectedVideo:
    """A video between detection and classification: its faces, or the fallback it already ended in."""

    path: Path
    frame_indices: list[int]
    faces: VideoFaces | None
    timings_s: dict[str, float]
    fallback: VideoPrediction | None = None
    decode_warning: str | None = None


def checked_family_weights(weights: dict[str, float], models: Sequence[LoadedModel], kinds: Sequence[str]
                           ) -> dict[str, float]:
    """``weights`` when the loaded models' kinds get a positive weight in all; ValueError naming the fix else."""
    if models and sum(weights.get(kind, 0.0) for kind in set(kinds)) <= 0:
        loaded = ", ".join(f"{m.path.name} ({m.family}, {kind})" for m, kind in zip(models, kinds))
        raise ValueError(f"--family-weights {','.join(f'{k}={w:g}' for k, w in weights.items())} gives the loaded "
                         f"models' kinds no weight ({loaded}); give their kind a positive weight")
    return dict(weights)


def model_temperature(loaded: LoadedModel, calibration: str) -> float | None:
    """The temperature the predictor applies to ``loaded``'s scores (per video and per person): its
    checkpoint's, with the ``calibration`` option on; None (raw scores) with it off or for a checkpoint that
    holds none."""
    if calibration != "on" or not loaded.calibration:
        return None
    return float(loaded.calibration["temperature"])


def calibration_record(models: Sequence[LoadedModel], temperatures: Sequence[float | None],
                       calibration: str) -> dict:
    """Per model whether a temperature was applied and which (the metrics JSON's ``calibration``)."""
    return {"option": calibration, "models": [
        {"path": str(m.path), "applied": t is not None, "temperature": t,
         "stored": dict(m.calibration) if m.calibration else None} for m, t in zip(models, temperatures)]}


@dataclass(frozen=True)
class ScoreRules:
    """How the scores of a video's items (face crops, clip chunks) become its probability: per model the
    strategy over its items (of the video, or of one person) and that model's temperature (None: raw; the
    level it was fitted at), the models of a kind combined (``--combine``), the kinds pooled by the family
    weights (``prediction.families.pool_families``), then the video rule over the pooled and the per-person
    scores. Used by the predictor, and by a caller that scores stored face scores of a subset of image
    models again (``bench/quality.py``'s ensembles)."""

    strategy: Callable[[Sequence[float]], float]
    combine: str
    video_rule: Any
    temperatures: tuple[float | None, ...]
    kinds: tuple[str, ...]  # per model its kind (``prediction.families.FAMILY_KINDS``)
    family_weights: Mapping[str, float]
    family_pool: str

    @classmethod
    def of(cls, options: PredictorOptions, temperatures: Sequence[float | None],
           kinds: Sequence[str] | None = None) -> ScoreRules:
        """``kinds`` default: every model an image model (stored face scores are image models' scores)."""
        kinds = tuple(kinds) if kinds is not None else (IMAGE_KIND,) * len(temperatures)
        return cls(STRATEGIES.get(options.strategy), options.combine, VIDEO_RULES.get(options.aggregate),
                   tuple(temperatures), kinds, options.family_weight_map, options.family_pool)

    @property
    def calibrated(self) -> bool:
        return any(t is not None for t in self.temperatures)

    def rows_of(self, kind: str) -> list[int]:
        """The indices of the models of ``kind``, in model order."""
        return [row for row, model_kind in enumerate(self.kinds) if model_kind == kind]

    def model_score(self, row: int, scores: np.ndarray, calibrated: bool = True) -> float | None:
        """Model ``row``'s score of ``scores`` (its items of a video, or of one person): the strategy, then its
        temperature (left out with ``calibrated=False``); None when there is no item."""
        if not scores.size:
            return None
        score, temperature = self.strategy(scores), self.temperatures[row]
        return score if temperature is None or not calibrated else float(apply_temperature([score], temperature)[0])

    def _combined(self, values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return combine_models(present, self.combine) if present else None

    def pool(self, items: Sequence[ModelItems], n_persons: int, calibrated: bool = True) -> PooledScores:
        """Per model its score (of all its items, and of each person's), the models of a kind combined, the
        kinds pooled by the family weights. ``calibrated=False``: the raw scores, every temperature left out."""
        model_pooled = [self.model_score(r, it.scores, calibrated) for r, it in enumerate(items)]
        model_person = [[self.model_score(r, it.scores[it.persons == p], calibrated) for p in range(n_persons)]
                        for r, it in enumerate(items)]
        kinds = list(dict.fromkeys(self.kinds))
        kind_pooled = {k: self._combined([model_pooled[r] for r in self.rows_of(k)]) for k in kinds}
        kind_person = {k: [self._combined([model_person[r][p] for r in self.rows_of(k)]) for p in range(n_persons)]
                       for k in kinds}
        weights, pool = self.family_weights, self.family_pool
        persons = [pool_families({k: kind_person[k][p] for k in kinds}, weights, pool) for p in range(n_persons)]
        return PooledScores(model_pooled, model_person, kind_pooled, kind_person,
                            pool_families(kind_pooled, weights, pool), persons)

    def video_score_of(self, scores: PooledScores) -> float | None:
        """The video rule over the pooled and the persons' scores; None when no person has a score."""
        scored = [s for s in scores.persons if s is not None]
        return self.video_rule.score(scores.pooled, scored) if scored else None

    # -- stored face scores ``(models, faces)`` of image models --
    def aggregate(self, face_scores: np.ndarray, calibrated: bool = True) -> tuple[float | None, list[float | None]]:
        """The pooled score of every face and each model's score."""
        no_person = np.full(np.shape(face_scores)[1], -1, dtype=np.int64)
        scores = self.pool([ModelItems(np.asarray(row), no_person) for row in face_scores], 0, calibrated)
        return scores.pooled, scores.model_pooled

    def video_score(self, face_scores: np.ndarray, face_persons: np.ndarray, calibrated: bool = True) -> float | None:
        """The video's probability from its face scores and each face's person."""
        n_persons = int(face_persons.max(initial=-1)) + 1
        items = [ModelItems(np.asarray(row), face_persons) for row in face_scores]
        return self.video_score_of(self.pool(items, n_persons, calibrated))


# prediction's precision rule lives with the training one (auto: fp16 on a GPU, fp32 on the CPU)
resolve_dtype = resolve_precision


def decode_video(path: str | os.PathLike, frames_per_video: int, sampling: str = "round") -> DecodedVideo:
    """The sampled frames of a video; unreadable videos come back with ``error`` set (never raise)."""
    path = Path(path)
    start = time.perf_counter()
    counts = DecodeCounts()
    try:
        indices, frames = read_sampled_frames(path, frames_per_video, sampling, counts=counts)
        error = None
    except VideoReadError as exc:
        indices, frames, error = [], [], f"unreadable video: {exc}"
    except (cv2.error, OSError) as exc:  # what OpenCV and the file system raise on a damaged or vanished file
        indices, frames, error = [], [], f"unreadable video: {path}: {type(exc).__name__}: {exc}"
    warning = counts.partial_warning(path) if error is None else None
    if warning:
        logger.warning("%s", warning)
    return DecodedVideo(path, indices, frames, error, time.perf_counter() - start, warning)


# ---- the one-video predictor ----------------------------------------------------------------------------


def _with_batchnorm_folded(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` with its model's batch normalisations folded into their convolutions (a copy; the caller's
    model is left as it is), checked on one small random input (64 px: cheap, and enough to see a wrong pair);
    as it was when nothing folds."""
    spec, side = loaded.input_spec, min(64, loaded.input_spec.size_px)
    shape = (1, 3, side, side) if spec.frames_per_clip == 1 else (1, 3, spec.frames_per_clip, side, side)
    check_batch = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    weight = next(loaded.model.parameters(), None)
    if weight is None:  # nothing to fold
        return loaded
    model, count = folded_if_equal(loaded.model, check_batch.to(device=weight.device, dtype=weight.dtype))
    return dataclasses.replace(loaded, model=model) if count else loaded


class VideoPredictor:
    """Loads the detector and an ensemble of checkpoints once; ``predict_video(path)`` per video.

    ``checkpoints`` may mix this project's checkpoints and the DFDC winner's released ones (all
    loaded by ``models.checkpoints.load_model``), image (2D) and clip (3D) families; image models with
    different input specs share the face crops, each gets them placed and normalised as its own spec says
    (``core.input_spec``; the ``resize_rounding`` option applies to every model). ``options``: how (default:
    ``resolve_options("default")``). ``encoder``: for checkpoints that name none;
    ``keep_face_crops``: keep the scored crops on each prediction (for reports).
    """

    def __init__(self, checkpoints: Sequence[str | os.PathLike] | None = None,
                 options: PredictorOptions | None = None, *, models: Sequence[LoadedModel] | None = None,
                 encoder: str | None = None, keep_face_crops: bool = False):
        options = resolve_options() if options is None else options
        if not isinstance(options, PredictorOptions):
            raise TypeError(f"options must be a PredictorOptions (from resolve_options), got {type(options).__name__}")
        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.precision, self.device)
        self.keep_face_crops = bool(keep_face_crops)
        self.classifier_batch_size = options.classifier_batch_size or (
            CLASSIFIER_BATCH_CPU if self.device == "cpu" else CLASSIFIER_BATCH_GPU)
        # auto: one video per torch CPU thread on the CPU (each then runs its operations on one thread);
        # on a GPU one at a time (the device is the bottleneck, the reader/classifier pipeline feeds it)
        self.videos_in_flight = options.videos_in_flight or (torch.get_num_threads() if self.device == "cpu" else 1)
        self.torch_threads = torch.get_num_threads()  # divided among the videos in flight (threads_per_video)
        if models is None:
            if not checkpoints:
                raise ValueError("no checkpoint given; pass checkpoint paths (e.g. weights/*_best)")
            models = [self._load(path, encoder) for path in checkpoints]
        if not models:
            raise ValueError("no model given")
        self.models = list(models)
        self.model_kinds = [kind_of(loaded.input_spec) for loaded in self.models]
        self.family_weights = checked_family_weights(options.family_weight_map, self.models, self.model_kinds)
        # per model, the temperature applied to its scores (None: raw), before the models are combined
        self.temperatures = [model_temperature(m, options.calibration) for m in self.models]
        self.rules = ScoreRules.of(options, self.temperatures, self.model_kinds)
        if options.fold_batchnorm:
            self.models = [_with_batchnorm_folded(loaded) for loaded in self.models]
        for loaded, kind in zip(self.models, self.model_kinds):
            # channels-last weights: faster convolutions (1.5x for Lite0 on the CPU), scores move by ~1e-7
            loaded.model.eval().to(device=self.device, dtype=self.dtype, memory_format=FAMILY_KINDS.get(kind).channels_last
                                   if options.channels_last else torch.contiguous_format)
        self.detector = build_detector(options.detector, DetectorSettings(
            "inference", device=self.device, batch_size=options.detector_batch_size,
            min_face_size_px=options.min_face_size_px, fast_pooling=options.detector_fast_pooling,
            fast_resampling=options.detector_fast_resampling,
            channels_last_crops=options.detector_channels_last_crops,
            resize=options.detector_resize, face_order=options.face_order))

    def threads_per_video(self, n_videos: int) -> int:
        """torch's CPU threads per operation in a ``predict_on_video_set`` run of ``n_videos``: the same for every
        video of the run whatever the overlap (a result's rounding depends on it: MTCNN boxes move by about 1e-4
        px between 1 and 2 threads); all of them for a run of one video."""
        return max(1, self.torch_threads // max(1, min(self.videos_in_flight, n_videos)))

    def _load(self, path: str | os.PathLike, encoder: str | None) -> LoadedModel:
        """The checkpoint's own encoder (config, else file name); ``encoder`` only for files naming none."""
        try:
            return load_model(path, device=self.device)
        except CheckpointError:
            if encoder is None:
                raise
            return load_model(path, encoder=encoder, device=self.device)

    # -- stages (public so that a caller can time or reuse them) --
    def decode(self, path: str | os.PathLike) -> DecodedVideo:
        return decode_video(path, self.options.frames_per_video, self.options.frame_sampling)

    def extract_faces(self, frame_indices: Sequence[int], frames: Sequence[np.ndarray]) -> VideoFaces:
        """Every face the detector finds in the frames (batched calls), cropped with the training margin;
        at most ``options.max_faces``, the first ones in frame order (a frame's faces in detector order)."""
        start = time.perf_counter()
        boxes_per_frame = self.detector.detect(frames, scale=self.options.detector_scale)
        limit = self.options.max_faces
        crops: list[np.ndarray] = []
        owners: list[int] = []
        kept_boxes: list[np.ndarray] = []
        for frame_index, frame, boxes in zip(frame_indices, frames, boxes_per_frame):
            for box in boxes if boxes is not None else ():
                if limit is not None and len(crops) >= limit:
                    break
                crop = crop_face(frame, box)
                if crop.shape[0] < 2 or crop.shape[1] < 2:  # a box outside the frame: nothing to classify
                    continue
                crops.append(crop)
                owners.append(int(frame_index))
                kept_boxes.append(box)
        boxes_array = np.asarray(kept_boxes, dtype=np.float32).reshape(-1, 5)
        return VideoFaces(list(frame_indices), np.asarray(owners, dtype=np.int64), crops, boxes_array,
                          time.perf_counter() - start, tuple(frames[0].shape) if len(frames) else ())

    def no_face_reason(self, frames: Sequence[np.ndarray]) -> str:
        """Why a video has no face, with the smallest face the detector could see at its scale and the
        ``--detector-scale`` that sees smaller ones (faces far from the camera are the usual cause)."""
        if not frames:
            return "no face found: no sampled frame"
        height, width = frames[0].shape[:2]
        scale = detector_scale(width, height) if self.options.detector_scale == "auto" else \
            float(self.options.detector_scale)
        smallest_px = self.options.min_face_size_px / scale
        larger = 1.0 if scale < 1 else 2 * scale
        return (f"no face found in {len(frames)} sampled frames ({width}x{height} px, detector scale {scale:g}: faces "
                f"smaller than about {smallest_px:.0f} px are not seen; if its faces are small, try "
                f"--detector-scale {larger:g}, which sees faces from about "
                f"{self.options.min_face_size_px / larger:.0f} px)")

    def input_spec(self, loaded: LoadedModel) -> InputSpec:
        """What ``loaded`` is fed: its checkpoint's spec, with this run's ``resize_rounding`` option."""
        return loaded.input_spec.replace(resize_rounding=self.options.resize_rounding)

    def rows_of(self, kind: str) -> list[int]:
        """The indices of the models of ``kind`` (``prediction.families.FAMILY_KINDS``), in model order."""
        return self.rules.rows_of(kind)

    @torch.inference_mode()
    def score_faces(self, crops: Sequence[np.ndarray], rows: Sequence[int] | None = None) -> np.ndarray:
        """Fake probability of every face crop under the image models ``rows`` (default: all of them):
        ``(models, faces)``."""
        rows = [i for i, m in enumerate(self.models) if not m.input_spec.is_clip] if rows is None else list(rows)
        scores = np.zeros((len(rows), len(crops)), dtype=np.float64)
        if not crops:
            return scores
        inputs_by_spec: dict[InputSpec, list[np.ndarray]] = {}
        for row, loaded in enumerate(self.models[i] for i in rows):
            spec = self.input_spec(loaded)
            if spec not in inputs_by_spec:
                inputs_by_spec[spec] = [place_face(crop, spec) for crop in crops]
            faces = inputs_by_spec[spec]
            for start in range(0, len(faces), self.classifier_batch_size):
                batch = to_model_batch(faces[start:start + self.classifier_batch_size], spec, self.device, self.dtype)
                probs = torch.sigmoid(loaded.model(batch).float()).squeeze(1)
                if self.options.tta:
                    flipped = torch.sigmoid(loaded.model(torch.flip(batch, dims=[3])).float()).squeeze(1)
                    probs = (probs + flipped) / 2
                scores[row, start:start + len(probs)] = probs.cpu().double().numpy()
        return scores

    def score_chunks(self, inputs: VideoInputs, rows: Sequence[int]) -> list[ModelItems]:
        """The clip models ``rows`` on chunks of each person's face-track clip (``prediction.clip_scoring``): the
        chunks planned per clip geometry, all cut in one decoding pass, each model on its geometry's chunks."""
        faces = inputs.faces
        geometry_of = {row: clip_geometry(self.models[row].input_spec, self.models[row].config) for row in rows}
        chunks_by_geometry: dict = {
            geometry: plan_chunks(faces.face_frame_indices, faces.boxes, inputs.face_persons, faces.frame_shape,
                                  geometry, self.options.clip_max_frames, self.options.clip_chunks)
            for geometry in dict.fromkeys(geometry_of.values())}
        cut = cut_chunks(inputs.path, chunks_by_geometry)
        items = []
        for row in rows:
            geometry = geometry_of[row]
            done = [(chunk, clip) for chunk, clip in zip(chunks_by_geometry[geometry], cut[geometry]) if clip is not None]
            spec = self.input_spec(self.models[row])
            scores = score_clips(self.models[row].model, [clip for _, clip in done], spec, self.device, self.dtype,
                                 max(1, self.classifier_batch_size // spec.frames_per_clip), self.options.tta,
                                 clip_crop_share(self.models[row].config))
            items.append(ModelItems(scores, np.array([chunk.person for chunk, _ in done], dtype=np.int64),
                                    [(chunk.frames[0], chunk.frames[-1]) for chunk, _ in done]))
        return items

    @property
    def calibrated(self) -> bool:
        """Whether a temperature is applied to some model's scores."""
        return self.rules.calibrated

    def calibration_record(self) -> dict:
        return calibration_record(self.models, self.rules.temperatures, self.options.calibration)

    def aggregate(self, face_scores: np.ndarray, calibrated: bool = True) -> tuple[float, list[float]]:
        return self.rules.aggregate(face_scores, calibrated)

    def link_persons(self, faces: VideoFaces) -> np.ndarray:
        """Person id per face (``-1``: a dropped short track), by ``faces.tracks.link_faces``."""
        return link_faces(faces.face_frame_indices, faces.boxes, TrackOptions(min_faces=self.options.track_min_faces),
                          n_frames=len(faces.frame_indices))

    # -- one video --
    def detect_decoded(self, decoded: DecodedVideo) -> DetectedVideo:
        """First half of a prediction: the faces of a decoded video, or the fallback it ends in."""
        timings = {"decode": decoded.decode_s, "detect": 0.0, "classify": 0.0, "aggregate": 0.0}
        if decoded.error is not None:
            return DetectedVideo(decoded.path, decoded.frame_indices, None, timings,
                                 self._fallback(decoded.path, "unreadable", decoded.error, timings))
        # no catch-all here: an exception in detection is a bug (or a setting such as an out-of-memory
        # batch), and a 0.5 for every video would hide it
        faces = self.extract_faces(decoded.frame_indices, decoded.frames)
        timings["detect"] = faces.detect_s
        if not faces.crops:
            return DetectedVideo(decoded.path, decoded.frame_indices, None, timings,
                                 self._fallback(decoded.path, "no_face", self.no_face_reason(decoded.frames), timings,
                                                decoded.frame_indices, decoded.warning))
        return DetectedVideo(decoded.path, decoded.frame_indices, faces, timings, decode_warning=decoded.warning)

    def score_models(self, inputs: VideoInputs) -> list[ModelItems]:
        """Every model's items on one video, each kind by its registry entry's scorer (model order)."""
        items: list[ModelItems | None] = [None] * len(self.models)
        for kind in dict.fromkeys(self.model_kinds):
            rows = self.rows_of(kind)
            for row, scored in zip(rows, FAMILY_KINDS.get(kind).score(self, inputs, rows)):
                items[row] = scored
        return items

    def classify_detected(self, detected: DetectedVideo) -> VideoPrediction:
        """Second half: every model on the faces (image models) or the persons' clips (clip models), then the
        strategy, the model combination, the family pooling and the video rule."""
        if detected.fallback is not None:
            return detected.fallback
        timings, faces = detected.timings_s, detected.faces
        start = time.perf_counter()
        face_persons = self.link_persons(faces)
        items = self.score_models(VideoInputs(detected.path, faces, face_persons))
        scored = time.perf_counter()
        n_persons = int(face_persons.max(initial=-1)) + 1
        scores = self.rules.pool(items, n_persons)
        probability = self.rules.video_score_of(scores)
        timings["classify"], timings["aggregate"] = scored - start, time.perf_counter() - scored
        if probability is None:
            return self._fallback(detected.path, "no_clip", self.no_clip_reason(n_persons), timings,
                                  detected.frame_indices, detected.decode_warning)
        image_rows = [row for row, m in enumerate(self.models) if not m.input_spec.is_clip]
        raw_probability = self.rules.video_score_of(self.rules.pool(items, n_persons, calibrated=False)) \
            if self.calibrated else None
        return VideoPrediction(
            detected.path, probability, frame_indices=detected.frame_indices, raw_probability=raw_probability,
            face_persons=face_persons, person_scores=scores.persons, aggregate=self.options.aggregate,
            pooled_probability=scores.pooled, per_person_probability=max(s for s in scores.persons if s is not None),
            face_frame_indices=faces.face_frame_indices, face_boxes=faces.boxes,
            face_scores=np.stack([items[row].scores for row in image_rows]) if image_rows else
            np.zeros((0, faces.face_frame_indices.size)),
            model_probabilities=scores.model_pooled, timings_s=timings, decode_warning=detected.decode_warning,
            face_crops=faces.crops if self.keep_face_crops else [], model_kinds=list(self.model_kinds),
            family_person_scores=scores.kind_person, family_probabilities=scores.kind_pooled,
            model_person_scores=scores.model_person,
            chunks=[ChunkScore(row, int(p), f, float(s)) for row, it in enumerate(items)
                    for p, f, s in zip(it.persons, it.frames, it.scores) if it.frames])

    def no_clip_reason(self, n_persons: int) -> str:
        """Why a video scored only by clip models has no score: no track spans one chunk."""
        spans = ", ".join(f"{m.path.name}: {m.input_spec.frames_per_clip} frames every {m.input_spec.frame_step}"
                          for m in self.models if m.input_spec.is_clip)
        return (f"no chunk for the clip models: none of the {n_persons} person(s) is tracked over the frames one "
                f"chunk spans ({spans}); a longer video, or an image model beside them, gives a score")

    def predict_decoded(self, decoded: DecodedVideo) -> VideoPrediction:
        return self.classify_detected(self.detect_decoded(decoded))

    def predict_video(self, path: str | os.PathLike) -> VideoPrediction:
        return self.predict_decoded(self.decode(path))

    __call__ = predict_video

    def error_prediction(self, path: str | os.PathLike, exc: BaseException) -> VideoPrediction:
        """The 0.5 answer for a video whose prediction raised (``keep_going``); logs the traceback."""
        logger.error("%s: prediction failed with %s (a bug, not a property of the video)", path,
                     type(exc).__name__, exc_info=exc)
        return self._fallback(Path(path), "error", f"prediction failed: {type(exc).__name__}: {exc}", {})

    def _fallback(self, path: Path, kind: str, reason: str, timings: dict[str, float],
                  frame_indices: Sequence[int] = (), decode_warning: str | None = None) -> VideoPrediction:
        logger.warning("%s: %s; predicting %.1f", path, reason, NEUTRAL_PROBABILITY)
        return VideoPrediction(path, NEUTRAL_PROBABILITY, list(frame_indices),
                               face_scores=np.zeros((len(self.models), 0)), fallback_reason=reason,
                               aggregate=self.options.aggregate,
                               fallback_kind=kind, timings_s=timings, decode_warning=decode_warning)


# ---- many videos ----------------------------------------------------------------------------------------


def predict_on_video_set(predictor: VideoPredictor, paths: Iterable[str | os.PathLike],
                         prefetch: int = 2, keep_going: bool = False) -> Iterator[VideoPrediction]:
    """``predictor.predict_video`` over ``paths``, yielded in order.

    With ``predictor.videos_in_flight`` above 1 (``in_flight``): that many videos at once, each in a worker
    thread from decoding to its score. Else a three-stage pipeline: a reader thread decodes the next
    ``prefetch`` videos, the caller's thread detects faces, and a classifier thread scores the previous
    video's faces meanwhile. OpenCV decoding and torch release the GIL, and MTCNN leaves cores idle between
    its many small steps, so the stages overlap even on two cores. ``prefetch=0``: one video after the
    other, nothing overlapped (whatever ``videos_in_flight`` says). Every way, torch runs each operation on
    ``predictor.threads_per_video(len(paths))`` threads (its CPU threads divided by ``videos_in_flight``, all
    of them for one video; set for the run and put back after it), so the results are the same every way.

    An exception (a bug: known input problems are fallbacks, not exceptions) ends the iteration after
    the videos before it were yielded; with ``keep_going`` it is logged with its traceback and the
    video gets ``predictor.error_prediction`` instead.
    """
    paths = [Path(p) for p in paths]

    def guarded(path: Path, step: Callable[[], VideoPrediction | DetectedVideo]):
        try:
            return step()
        except Exception as exc:
            if not keep_going:
                raise
            return predictor.error_prediction(path, exc)

    with torch_threads(predictor.threads_per_video(len(paths))):
        if prefetch < 1:
            for path in paths:
                yield guarded(path, lambda path=path: predictor.predict_video(path))
        elif predictor.videos_in_flight > 1 and len(paths) > 1:
            yield from in_flight(predictor, paths, guarded)
        else:
            yield from _pipeline(predictor, paths, prefetch, guarded)


def _pipeline(predictor: VideoPredictor, paths: Sequence[Path], prefetch: int,
              guarded: Callable[[Path, Callable[[], Any]], Any]) -> Iterator[VideoPrediction]:
    """One video at a time: the next ``prefetch`` decoded in a reader thread, the previous one classified in
    a classifier thread while the caller's thread detects the faces of the current one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-reader") as reader, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier") as classifier:
        decoding: deque[tuple[Path, Future[DecodedVideo]]] = deque()
        classifying: deque[tuple[Path, Future[VideoPrediction]]] = deque()
        next_index = 0
        while next_index < len(paths) and len(decoding) < prefetch:
            decoding.append((paths[next_index], reader.submit(predictor.decode, paths[next_index])))
            next_index += 1
        while decoding:
            path, decoding_future = decoding.popleft()
            if next_index < len(paths):
                decoding.append((paths[next_index], reader.submit(predictor.decode, paths[next_index])))
                next_index += 1
            detected = guarded(path, lambda f=decoding_future: predictor.detect_decoded(f.result()))
            del decoding_future  # the frames stay alive only through the face crops
            if isinstance(detected, VideoPrediction):  # it failed, with keep_going
                classifying.append((path, _done(detected)))
            else:
                classifying.append((path, classifier.submit(predictor.classify_detected, detected)))
            while len(classifying) > 1:  # one video classified while the next is detected
                done_path, future = classifying.popleft()
                yield guarded(done_path, future.result)
        while classifying:
            done_path, future = classifying.popleft()
            yield guarded(done_path, future.result)


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """torch's CPU threads set to ``count`` for the block, then put back. The setting is the process's:
    it is changed only here, before any worker thread starts and after they all end, so that every operation
    of a run gets the same number of threads (a thread count changed mid-run can change a result's rounding)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)


def in_flight(predictor: VideoPredictor, paths: Sequence[Path],
              guarded: Callable[[Path, Callable[[], VideoPrediction]], VideoPrediction]) -> Iterator[VideoPrediction]:
    """``predictor.predict_video`` on ``predictor.videos_in_flight`` videos at once (worker threads), yielded in
    order. Up to twice as many videos are queued, so that a worker takes the next one as soon as it is done;
    the rest wait until the caller takes an answer."""
    workers = min(predictor.videos_in_flight, len(paths))
    pending: deque[tuple[Path, Future[VideoPrediction]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video") as pool:
        try:
            for path in paths:
                while len(pending) >= 2 * workers:
                    done_path, future = pending.popleft()
                    yield guarded(done_path, future.result)
                pending.append((path, pool.submit(predictor.predict_video, path)))
            while pending:
                done_path, future = pending.popleft()
                yield guarded(done_path, future.result)
        finally:  # an exception or a caller that stops early: the queued videos are not started
            for _, future in pending:
                future.cancel()


def _done(value: VideoPrediction) -> Future[VideoPrediction]:
    future: Future[VideoPrediction] = Future()
    future.set_result(value)
    return future


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """Every video file directly in ``folder`` (``VIDEO_SUFFIXES``, any case), sorted by name."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()),
                  key=lambda p: p.name)


def unread_videos(folder: str | os.PathLike) -> list[Path]:
    """The files directly in ``folder`` whose extension names a video format this predictor does not read
    (``OTHER_VIDEO_SUFFIXES``): they get no row, and a caller should say so."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in OTHER_VIDEO_SUFFIXES and p.is_file()),
                  key=lambda p: p.name)


def predict_folder(predictor: VideoPredictor, folder: str | os.PathLike,
                   prefetch: int = 2) -> Iterator[VideoPrediction]:
    """Predictions for every video in ``folder`` (``list_videos``), sorted by file name."""
    return predict_on_video_set(predictor, list_videos(folder), prefetch=prefetch)
