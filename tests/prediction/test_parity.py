"""The winner preset against the DFDC winner's own predictor (../shared/parity): same frames, boxes,
face scores and probabilities on the six real_small clips, with the parity checkpoint on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datasets.layout import DataLayout
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor, predict_on_video_set

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"
CHECKPOINT = PARITY_DIR / "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"
REFERENCE = PARITY_DIR / "winner_predictions_real_small.json"

# the goal is 1e-3 per video; measured here: 1.2e-8 (probabilities), 4e-6 (face scores, the
# reference keeps 7 digits), 5e-5 px (boxes, the reference keeps 4 decimals)
PROBABILITY_TOLERANCE = 1e-4
FACE_SCORE_TOLERANCE = 1e-4
BOX_TOLERANCE_PX = 1e-2
DETECTOR_PROB_TOLERANCE = 1e-5
WINNER_FAST_TOLERANCE = 1e-5  # winner-fast: the classifier's float rounding (measured 1.3e-6)


@pytest.fixture(scope="module")
def reference() -> dict:
    if not CHECKPOINT.is_file() or not REFERENCE.is_file():
        pytest.skip(f"the winner's reference answers are not present at {PARITY_DIR}")
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def winner_predictions(reference, real_small) -> dict:
    clips = [DataLayout(real_small).part_dir(0) / name for name in sorted(reference)]
    missing = [c for c in clips if not c.is_file()]
    if missing:
        pytest.skip(f"clips of the reference missing: {missing}")
    predictor = VideoPredictor([CHECKPOINT], resolve_options("winner", device="cpu", precision="fp32"))
    assert [(m.encoder, m.input_size) for m in predictor.models] == [("tf_efficientnet_lite0", 224)]
    return {p.name: p for p in predict_on_video_set(predictor, clips)}


@pytest.mark.slow
@pytest.mark.real_data
def test_winner_preset_reproduces_the_original_predictor(reference, winner_predictions):
    assert set(winner_predictions) == set(reference) and len(reference) == 6
    for name, expected in reference.items():
        pred = winner_predictions[name]
        assert pred.fallback_reason is None, (name, pred.fallback_reason)
        assert pred.frame_indices == expected["frame_indices"], name
        faces = expected["faces"]
        assert pred.face_frame_indices.tolist() == [f["frame"] for f in faces], name
        np.testing.assert_allclose(pred.face_boxes[:, :4], [f["box"] for f in faces], rtol=0, atol=BOX_TOLERANCE_PX,
                                   err_msg=name)
        np.testing.assert_allclose(pred.face_boxes[:, 4], [f["detector_prob"] for f in faces], rtol=0,
                                   atol=DETECTOR_PROB_TOLERANCE, err_msg=name)
        np.testing.assert_allclose(pred.face_scores[0], [f["score"] for f in faces], rtol=0,
                                   atol=FACE_SCORE_TOLERANCE, err_msg=name)
        assert abs(pred.probability - expected["probability"]) <= PROBABILITY_TOLERANCE, name


@pytest.mark.slow
@pytest.mark.real_data
def test_winner_fast_preset_gives_the_originals_answers_to_float_rounding(reference, winner_predictions, real_small):
    """``winner-fast`` keeps the winner's frames, boxes and faces and changes only the classifier's arithmetic
    (batch normalisation folded, batches of 8 faces): probabilities within 1e-5 of the original's (measured:
    1.3e-6 on 20 real clips), but not bit for bit, so the faster arithmetic did act."""
    clips = [DataLayout(real_small).part_dir(0) / name for name in sorted(reference)]
    predictor = VideoPredictor([CHECKPOINT], resolve_options("winner-fast", device="cpu", precision="fp32"))
    fast = {p.name: p for p in predict_on_video_set(predictor, clips)}
    score_moves = []
    for name, expected in reference.items():
        exact = winner_predictions[name]
        np.testing.assert_array_equal(fast[name].face_boxes, exact.face_boxes, err_msg=name)
        assert abs(fast[name].probability - expected["probability"]) <= WINNER_FAST_TOLERANCE, name
        score_moves.append(np.abs(fast[name].face_scores[0] - exact.face_scores[0]).max())
    assert 0 < max(score_moves) <= WINNER_FAST_TOLERANCE


@pytest.mark.real_data
def test_the_default_frame_sampling_does_not_match_the_original(reference, real_small):
    """The reference is sensitive to what the preset changes: the default preset's frames differ on
    every clip (rounded, not truncated), so the comparison above could not pass by accident."""
    from core.video import evenly_spaced_indices, probe_video

    for name, expected in reference.items():
        count = probe_video(DataLayout(real_small).part_dir(0) / name).frame_count
        assert evenly_spaced_indices(count, 32, "truncate") == expected["frame_indices"], name
        assert evenly_spaced_indices(count, 32, "round") != expected["frame_indices"], name


@pytest.mark.real_data
def test_winner_preset_scores_faces_with_the_originals_arithmetic(reference, real_small):
    """The original turns its NHWC face array into NCHW with a permuted view (no copy), so torch runs its
    convolutions channels-last. The preset's scores on a real clip's faces equal, to the bit, the parity
    model on that layout; computed NCHW they would not (1e-6 apart: the reason the preset is channels-last)."""
    import torch

    from core.input_spec import IMAGENET_MEAN, IMAGENET_STD, place_face
    from models.checkpoints import load_model

    predictor = VideoPredictor([CHECKPOINT], resolve_options("winner", device="cpu", precision="fp32"))
    detected = predictor.detect_decoded(predictor.decode(DataLayout(real_small).part_dir(0) / "519.mp4"))
    crops = detected.faces.crops
    assert len(crops) > 10
    spec = predictor.input_spec(predictor.models[0])
    got = predictor.score_faces(crops)[0]

    plain = load_model(CHECKPOINT).model.eval()  # contiguous (NCHW) weights, as the original loads them
    nhwc = torch.from_numpy(np.stack([place_face(crop, spec) for crop in crops])).float()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    permuted = (nhwc.permute(0, 3, 1, 2) / 255.0 - mean) / std  # the original's view: channels-last strides
    assert permuted.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        original_layout = torch.sigmoid(plain(permuted)).squeeze(1).double().numpy()
        nchw = torch.sigmoid(plain(permuted.contiguous())).squeeze(1).double().numpy()
    np.testing.assert_array_equal(got, original_layout)
    assert np.abs(nchw - original_layout).max() > 0  # the layout matters: this test would see NCHW
