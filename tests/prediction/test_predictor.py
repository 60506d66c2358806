"""The video predictor: training/inference parity, fallbacks, real clips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import prediction.predictor as predictor_module
from core import geometry, input_spec
from core.video import read_sampled_frames
from datasets.layout import DataLayout
from faces import mtcnn
from models.checkpoints import CheckpointError, load_model
from models.classifier2d import DEFAULT_INPUT_SIZE
from prediction.aggregation import combine_models, confident_strategy
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor, predict_on_video_set, resolve_dtype, to_model_batch
from tests.prediction.conftest import BAD_VIDEOS, FRAMES_PER_VIDEO

CPU_OPTIONS = resolve_options(device="cpu", frames_per_video=FRAMES_PER_VIDEO)

# ---- parity with training ---------------------------------------------------------------------------------


def test_inference_uses_the_training_geometry(test_videos):
    from training.transforms import augmentations

    # the same function objects, not copies
    assert predictor_module.crop_face is geometry.crop_face
    assert predictor_module.place_face is input_spec.place_face
    assert input_spec.face_to_model_input is geometry.face_to_model_input
    assert augmentations.isotropic_resize is geometry.isotropic_resize
    assert augmentations.pad_to_square is geometry.pad_to_square
    # and the same pixels as the validation transform training scores its checkpoints with
    _, frames = read_sampled_frames(sorted(test_videos.glob("*.mp4"))[0], 2)
    boxes = mtcnn.FaceDetector(mtcnn.THRESHOLDS_INFERENCE, device="cpu").detect(frames)
    crop = geometry.crop_face(frames[0], boxes[0][0])
    for size in (64, 96, 2 * max(crop.shape)):
        spec = input_spec.InputSpec(size_px=size)
        expected = augmentations.create_val_transforms(spec)(image=crop)["image"]
        np.testing.assert_array_equal(input_spec.place_face(crop, spec), expected)
        np.testing.assert_array_equal(geometry.face_to_model_input(crop, size), expected)
    spec = input_spec.InputSpec(size_px=96)
    model_input = input_spec.place_face(crop, spec)
    torch.testing.assert_close(to_model_batch([model_input], spec)[0], augmentations.image_to_tensor(model_input, spec),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("tta", [False, True])
def test_predict_video_equals_step_by_step(test_videos, loaded_model, tta):
    video = sorted(test_videos.glob("*.mp4"))[-1]
    # batch normalisation unfolded, as the step-by-step model below computes it (folding moves scores by
    # ~1e-6: tests/models/test_batchnorm_folding.py and test_speed_settings_keep_the_original_scores)
    predictor = VideoPredictor(models=[loaded_model], options=resolve_options(
        device="cpu", frames_per_video=FRAMES_PER_VIDEO, tta=tta, fold_batchnorm=False), keep_face_crops=True)
    pred = predictor.predict_video(video)

    indices, frames = read_sampled_frames(video, FRAMES_PER_VIDEO)
    detector = mtcnn.FaceDetector(mtcnn.THRESHOLDS_INFERENCE, device="cpu", min_face_size=20)
    boxes = detector.detect(frames, scale=mtcnn.detector_scale(frames[0].shape[1], frames[0].shape[0]))
    crops, owners = [], []
    for index, frame, frame_boxes in zip(indices, frames, boxes):
        for box in frame_boxes if frame_boxes is not None else []:
            crops.append(geometry.crop_face(frame, box))
            owners.append(index)
    assert crops, f"no face found in {video}"
    inputs = np.stack([geometry.face_to_model_input(c, loaded_model.input_size) for c in crops]).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = torch.from_numpy(((inputs / 255.0 - mean) / std).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        scores = torch.sigmoid(loaded_model.model(x)).squeeze(1).double().numpy()
        if tta:
            flipped = torch.sigmoid(loaded_model.model(torch.flip(x, dims=[3]))).squeeze(1).double().numpy()
            scores = (scores + flipped) / 2

    assert pred.fallback_reason is None
    assert pred.frame_indices == indices
    assert pred.face_frame_indices.tolist() == owners
    assert len(pred.face_crops) == len(crops)
    for kept, crop in zip(pred.face_crops, crops):
        np.testing.assert_array_equal(kept, crop)
    np.testing.assert_allclose(pred.face_scores[0], scores, rtol=0, atol=1e-6)
    assert pred.probability == pytest.approx(confident_strategy(scores), abs=1e-6)
    expected_frames = {f: np.mean([s for s, o in zip(scores, owners) if o == f]) for f in set(owners)}
    assert pred.frame_scores == pytest.approx(expected_frames, abs=1e-6)
    assert np.ptp(scores) > 1e-3, "the test model must give faces different scores for the parity to mean much"


def test_speed_settings_keep_the_original_scores(test_videos, project_checkpoint):
    # the defaults (separable max pooling, integral-image resampling, device-sized detector batches, channels-last
    # weights, batch normalisation folded) against
    # facenet-pytorch's modules as they ship, one frame per MTCNN call and contiguous weights
    video = sorted(test_videos.glob("*.mp4"))[0]
    fast = VideoPredictor(models=[load_model(project_checkpoint)],
                          options=resolve_options(device="cpu", frames_per_video=FRAMES_PER_VIDEO))
    plain = VideoPredictor(models=[load_model(project_checkpoint)], options=resolve_options(
        device="cpu", frames_per_video=FRAMES_PER_VIDEO, detector_fast_pooling=False, detector_fast_resampling=False,
        detector_batch_size=1, fold_batchnorm=False,
        channels_last=False))
    assert (fast.detector.fast_resampling, fast.detector.channels_last_crops) == (True, True)
    assert (plain.detector.fast_resampling, plain.detector.channels_last_crops) == (False, False)
    weight = fast.models[0].model.encoder.conv_stem.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert plain.models[0].model.encoder.conv_stem.weight.is_contiguous()
    got, expected = fast.predict_video(video), plain.predict_video(video)
    assert got.fallback_reason is None and got.n_faces == expected.n_faces > 0
    np.testing.assert_allclose(got.face_scores, expected.face_scores, rtol=0, atol=1e-5)
    assert got.probability == pytest.approx(expected.probability, abs=1e-5)


def test_ensemble_of_project_and_winner_checkpoints(test_videos, project_checkpoint, winner_checkpoint):
    video = sorted(test_videos.glob("*.mp4"))[0]
    predictor = VideoPredictor([project_checkpoint, winner_checkpoint], resolve_options(
        device="cpu", frames_per_video=FRAMES_PER_VIDEO, combine="geometric"))
    assert [m.encoder for m in predictor.models] == ["tf_efficientnet_lite0"] * 2
    # the winner's files carry no config: the encoder comes from the name, the size from the encoder
    assert [m.input_size for m in predictor.models] == [96, DEFAULT_INPUT_SIZE["tf_efficientnet_lite0"]]
    assert all(p.dtype == torch.float32 for m in predictor.models for p in m.model.parameters())
    pred = predictor.predict_video(video)
    assert pred.face_scores.shape == (2, pred.n_faces) and pred.n_faces > 0
    assert pred.probability == pytest.approx(combine_models(pred.model_probabilities, "geometric"), abs=1e-12)
    # the winner-format file holds the project file's weights: the same scores at the same input size
    same_weights = load_model(project_checkpoint, input_size=predictor.models[1].input_size)
    reference = VideoPredictor(models=[same_weights], options=CPU_OPTIONS)
    decoded = reference.decode(video)
    crops = reference.extract_faces(decoded.frame_indices, decoded.frames).crops
    np.testing.assert_allclose(pred.face_scores[1], reference.score_faces(crops)[0], rtol=0, atol=1e-7)
    assert not np.allclose(pred.face_scores[0], pred.face_scores[1], atol=1e-3)


def test_encoder_option_only_for_checkpoints_that_name_none(tmp_path, project_checkpoint):
    bare = tmp_path / "weights.pth"  # a bare state dict: no config, no encoder in the name
    torch.save(torch.load(project_checkpoint, map_location="cpu", weights_only=False)["state_dict"], bare)
    with pytest.raises(CheckpointError, match="does not say which encoder"):
        VideoPredictor([bare], CPU_OPTIONS)
    assert VideoPredictor([bare], CPU_OPTIONS, encoder="tf_efficientnet_lite0").models[0].input_size == 224
    # a checkpoint whose config names its encoder keeps it whatever --encoder says
    kept = VideoPredictor([project_checkpoint], CPU_OPTIONS, encoder="tf_efficientnet_b0_ns").models[0]
    assert (kept.encoder, kept.input_size) == ("tf_efficientnet_lite0", 96)


def test_precision_rules():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.float16
    assert resolve_dtype("bf16", "cuda:0") == torch.bfloat16
    with pytest.raises(ValueError, match="fp32"):
        resolve_dtype("fp16", "cpu")


# ---- bad inputs and folders --------------------------------------------------------------------------------


def test_bad_videos_get_neutral_answer_and_reason(bad_inputs, loaded_model, caplog, tmp_path):
    predictor = VideoPredictor(models=[loaded_model], options=CPU_OPTIONS)
    for name, kind in BAD_VIDEOS.items():
        caplog.clear()
        pred = predictor.predict_video(bad_inputs[name])
        assert pred.probability == 0.5, name
        assert pred.fallback_kind == kind, (name, pred.fallback_reason)
        assert any(name in r.getMessage() and pred.fallback_reason in r.getMessage() for r in caplog.records)
        if kind == "no_face":
            assert "no face" in pred.fallback_reason and len(pred.frame_indices) == FRAMES_PER_VIDEO
        else:
            assert name in pred.fallback_reason and pred.frame_indices == []
    missing = predictor.predict_video(tmp_path / "missing.mp4")
    assert missing.fallback_kind == "unreadable" and "missing.mp4" in missing.fallback_reason


def test_no_face_among_small_faces_says_which_detector_scale_sees_them(test_videos, loaded_model, tmp_path):
    """A face of about 20 px in a 1280x720 frame: the auto scale (0.5) cannot see it; the hinted one does."""
    import cv2

    from tests.prediction.conftest import write_video

    _, frames = read_sampled_frames(sorted(test_videos.glob("*.mp4"))[0], 2)
    far = []
    for frame in frames:  # the 320x240 scene (face ~80 px) shrunk 4x onto a wide empty room
        canvas = np.full((720, 1280, 3), 90, dtype=np.uint8)
        small = cv2.resize(frame, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        canvas[300:300 + small.shape[0], 600:600 + small.shape[1]] = small
        far.append(canvas)
    video = write_video(tmp_path / "far_away.mp4", far)
    options = resolve_options(device="cpu", frames_per_video=2)
    pred = VideoPredictor(models=[loaded_model], options=options).predict_video(video)
    assert pred.fallback_kind == "no_face"
    assert "1280x720 px, detector scale 0.5: faces smaller than about 40 px are not seen" in pred.fallback_reason
    assert "try --detector-scale 1," in pred.fallback_reason
    hinted = resolve_options(device="cpu", frames_per_video=2, detector_scale=1.0)
    found = VideoPredictor(models=[loaded_model], options=hinted).predict_video(video)
    assert found.fallback_kind is None and found.n_faces == 2 and found.face_boxes[0, 2] - found.face_boxes[0, 0] < 30


def test_video_set_keeps_order_and_matches_one_by_one(test_videos, bad_inputs, loaded_model):
    """Several videos in flight (the CPU's default) and the reader and classifier threads change neither the
    order nor the answers of one video after the other (``prefetch=0``, the same torch threads per operation)."""
    paths = [bad_inputs["faceless.mp4"], sorted(test_videos.glob("*.mp4"))[1], bad_inputs["corrupt.mp4"],
             sorted(test_videos.glob("*.mp4"))[0]]
    for in_flight in (2, 1):
        predictor = VideoPredictor(models=[loaded_model], options=replace(CPU_OPTIONS, videos_in_flight=in_flight))
        overlapped = list(predict_on_video_set(predictor, paths, prefetch=2))
        assert [p.path for p in overlapped] == paths
        assert [p.fallback_kind for p in overlapped] == ["no_face", None, "unreadable", None]
        one_by_one = list(predict_on_video_set(predictor, paths, prefetch=0))
        for pred, single in zip(overlapped[1::2], one_by_one[1::2]):
            np.testing.assert_array_equal(pred.face_scores, single.face_scores)
            assert pred.probability == single.probability


class _BrokenClassifier(torch.nn.Module):
    """A model with a bug: its forward raises TypeError (the predictor around it is what is tested)."""

    def forward(self, x):
        raise TypeError("forward() got an unexpected keyword argument 'x'")


def test_a_bug_is_raised_not_turned_into_a_fallback(test_videos, bad_inputs, loaded_model):
    broken = predictor_module.LoadedModel(_BrokenClassifier(), loaded_model.encoder, loaded_model.input_spec,
                                      loaded_model.path)
    predictor = VideoPredictor(models=[broken], options=CPU_OPTIONS)
    good = sorted(test_videos.glob("*.mp4"))[0]
    with pytest.raises(TypeError, match="unexpected keyword"):
        predictor.predict_video(good)
    # known input problems still fall back, the model is never reached
    assert predictor.predict_video(bad_inputs["corrupt.mp4"]).fallback_kind == "unreadable"
    assert predictor.predict_video(bad_inputs["faceless.mp4"]).fallback_kind == "no_face"
    paths = [bad_inputs["faceless.mp4"], good, bad_inputs["corrupt.mp4"]]
    for prefetch in (0, 2):
        with pytest.raises(TypeError):
            list(predict_on_video_set(predictor, paths, prefetch=prefetch))
        kept = list(predict_on_video_set(predictor, paths, prefetch=prefetch, keep_going=True))
        assert [p.fallback_kind for p in kept] == ["no_face", "error", "unreadable"]
        assert "TypeError" in kept[1].fallback_reason and kept[1].probability == 0.5


@pytest.mark.real_data
def test_real_clips_all_yield_faces(real_small, loaded_model):
    """Every real clip, the 1080x1920 portrait included, gives a face in every sampled frame."""
    predictor = VideoPredictor(models=[loaded_model], options=CPU_OPTIONS)
    clips = sorted(DataLayout(real_small).part_dir(0).glob("*.mp4"))
    assert len(clips) == 6
    for pred in predict_on_video_set(predictor, clips):
        assert pred.fallback_reason is None, pred.name
        assert set(pred.face_frame_indices.tolist()) == set(pred.frame_indices), pred.name
        assert len(pred.frame_indices) == FRAMES_PER_VIDEO
