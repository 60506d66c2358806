"""Inference library: one probability per video from an ensemble of face classifiers.

The names the DFDC kernels used, kept for scripts and notebooks (``from kernel_utils import
VideoPredictor, predict_folder, resolve_options``). The code is in :mod:`prediction.predictor` (the
per-video predictor and the loop over a folder) and :mod:`prediction.aggregation` (how one score is
made of a video's face scores and of several models).
"""

from __future__ import annotations

from prediction.aggregation import (
    STRATEGIES,
    combine_models,
    confident_strategy,
    describe_strategy,
    max_strategy,
    mean_strategy,
)
from prediction.options import PredictorOptions, resolve_options
from prediction.predictor import (
    CLASSIFIER_BATCH_CPU,
    CLASSIFIER_BATCH_GPU,
    NEUTRAL_PROBABILITY,
    OTHER_VIDEO_SUFFIXES,
    VIDEO_SUFFIXES,
    DecodedVideo,
    DetectedVideo,
    VideoFaces,
    VideoPrediction,
    VideoPredictor,
    decode_video,
    list_videos,
    predict_folder,
    predict_on_video_set,
    resolve_dtype,
    to_model_batch,
    unread_videos,
)

__all__ = [
    "PredictorOptions", "resolve_options", "VideoPredictor", "VideoPrediction", "predict_on_video_set",
    "predict_folder", "list_videos", "unread_videos", "VIDEO_SUFFIXES", "confident_strategy",
    "describe_strategy", "combine_models",
]
