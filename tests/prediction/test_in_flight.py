"""Several videos in flight (``videos_in_flight``) give every video the score it gets alone: two in-flight
runs and the one-video-at-a-time run agree exactly on the real clips, for the winner preset (whose answers
are the original predictor's) and for the default preset (batched MTCNN, channels-last weights). 8 frames per
video keep it short; the threads' sharing does not depend on the frame count."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datasets.layout import DataLayout
from models.checkpoints import load_model
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor, list_videos, predict_on_video_set

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_CHECKPOINT = REPO_ROOT.parent / "shared" / "parity" / "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"


def answers(predictor: VideoPredictor, clips: list[Path], prefetch: int) -> dict[str, tuple]:
    """Per clip its probability, boxes and face scores (bit for bit)."""
    return {p.name: (p.probability, p.face_boxes.tobytes(), p.face_scores.tobytes(), p.fallback_reason)
            for p in predict_on_video_set(predictor, clips, prefetch=prefetch)}


@pytest.fixture(scope="module")
def parity_model():
    if not PARITY_CHECKPOINT.is_file():
        pytest.skip(f"the parity checkpoint is not present at {PARITY_CHECKPOINT}")
    return load_model(PARITY_CHECKPOINT, device="cpu")


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("preset", ["winner", "default"])
def test_videos_in_flight_score_every_video_as_alone(preset, parity_model, real_small):
    clips = list_videos(DataLayout(real_small).part_dir(0))
    threads_before = torch.get_num_threads()
    predictor = VideoPredictor(models=[parity_model],
                               options=resolve_options(preset, device="cpu", precision="fp32", videos_in_flight=3,
                                                               frames_per_video=8))
    assert predictor.videos_in_flight == 3
    alone = answers(predictor, clips, prefetch=0)
    first, second = answers(predictor, clips, prefetch=2), answers(predictor, clips, prefetch=2)
    assert torch.get_num_threads() == threads_before  # the run gives torch its threads back
    assert len(alone) == len(clips) == 6 and all(a[3] is None for a in alone.values())
    assert first == second, [n for n in first if first[n] != second[n]]
    assert first == alone, [n for n in first if first[n] != alone[n]]
