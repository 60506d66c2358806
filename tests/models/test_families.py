"""Model families: the registry builds the config's network, checkpoints record the family and its input
spec, and the one loader, the trainer and the predictor follow them. A toy family registered here runs
end to end: trained on the sample set, saved, loaded and scored on a real video with its own input spec."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec, place_face, to_model_batch
from datasets.layout import DataLayout
from models.checkpoints import CheckpointError, load_model, read_checkpoint, save_checkpoint
from models.classifier2d import DEFAULT_INPUT_SIZE, DeepFakeClassifier
from models.family import ModelFamily
from models.registry import MODEL_FAMILIES, create_model, input_spec
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor
from training.pipelines.train_classifier import TrainOptions, train
from training.tools.config import ConfigError, load_config

ENCODER = "tf_efficientnet_lite0"


class TinyNet(nn.Module):
    """A real (small) convolutional network with one logit."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2)
        self.fc = nn.Linear(width, 1)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def tiny_spec(config) -> InputSpec:
    # deliberately not ImageNet's: the test sees whether every stage reads the spec
    return InputSpec(size_px=int(config.get("size") or 40), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def tiny_family():
    MODEL_FAMILIES.register("tiny", ModelFamily(lambda config: TinyNet(4),
                                                tiny_spec, description="a test family"))
    yield "tiny"
    MODEL_FAMILIES.unregister("tiny")


def test_the_2d_classifier_is_the_default_family():
    assert "classifier2d" in MODEL_FAMILIES.names()
    assert isinstance(create_model({"encoder": ENCODER}), DeepFakeClassifier)
    assert isinstance(create_model({"family": "classifier2d", "encoder": ENCODER}), DeepFakeClassifier)
    assert input_spec({"encoder": ENCODER}) == InputSpec(DEFAULT_INPUT_SIZE[ENCODER], mean=IMAGENET_MEAN,
                                                         std=IMAGENET_STD)
    assert input_spec({"encoder": ENCODER, "size": 96}).size_px == 96
    with pytest.raises(ValueError, match="unknown model family 'nope'; known: classifier2d"):
        create_model({"family": "nope", "encoder": ENCODER})


def test_checkpoints_record_the_family_and_spec_and_old_ones_still_load(tmp_path):
    torch.manual_seed(0)
    model = DeepFakeClassifier(ENCODER).eval()
    new = tmp_path / "new_last"
    save_checkpoint(new, model, {"encoder": ENCODER, "size": 64})
    data = read_checkpoint(new)
    assert data["family"] == "classifier2d" and InputSpec.from_dict(data["input_spec"]) == InputSpec(64)
    # a checkpoint written before families: no family, no spec; the config's size still rules
    old = tmp_path / "old_last"
    torch.save({"state_dict": model.state_dict(), "config": {"encoder": ENCODER, "size": 64}}, old)
    x = torch.rand(2, 3, 64, 64)
    for path in (new, old):
        loaded = load_model(path)
        assert (loaded.family, loaded.input_spec, loaded.input_size) == ("classifier2d", InputSpec(64), 64)
        with torch.no_grad():
            assert torch.equal(loaded.model(x), model(x))
    # a family this version does not know: refused, naming the file and the known families
    alien = tmp_path / "alien_last"
    torch.save({"state_dict": model.state_dict(), "family": "transformer9d", "config": {"encoder": ENCODER}}, alien)
    with pytest.raises(CheckpointError, match=r"alien_last is a 'transformer9d' model.*known: classifier2d"):
        load_model(alien)


def test_a_config_naming_an_unknown_family_is_refused_before_any_work():
    with pytest.raises(ConfigError, match="family 'nope' is not a model family; known: classifier2d"):
        load_config(None, ["family=nope"])
    assert load_config(None).family == "classifier2d"


def test_a_registered_family_trains_saves_loads_and_predicts_with_its_own_spec(tiny_family, preprocessed_root,
                                                                                sample_root, tmp_path):
    overrides = [f"family={tiny_family}", "network=TinyNet", "size=40", "batch_size=4", "workers=0", "epochs=1",
                 "tensorboard_images=0", "augment=false", 'optimizer={"type": "Adam", "lr": 0.001}']
    result = train(TrainOptions(data_dir=str(preprocessed_root), overrides=overrides, seed=1, progress=False,
                                output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs")))
    path = tmp_path / "weights" / f"{result.name}_last"
    stored = read_checkpoint(path)
    assert stored["family"] == "tiny" and stored["input_spec"] == tiny_spec({"size": 40}).to_dict()
    loaded = load_model(path)
    assert isinstance(loaded.model, TinyNet) and loaded.input_spec == tiny_spec({"size": 40})

    video = sorted(DataLayout(sample_root).test_videos_dir.glob("*.mp4"))[0]
    predictor = VideoPredictor(models=[loaded], options=resolve_options(device="cpu", frames_per_video=4,
                                                                        channels_last=False),
                               keep_face_crops=True)
    prediction = predictor.predict_video(video)
    assert prediction.n_faces > 0
    spec = loaded.input_spec
    with torch.no_grad():
        expected = torch.sigmoid(loaded.model(to_model_batch([place_face(c, spec) for c in prediction.face_crops],
                                                             spec))).squeeze(1).double().numpy()
        imagenet = spec.replace(mean=IMAGENET_MEAN, std=IMAGENET_STD)
        other = torch.sigmoid(loaded.model(to_model_batch([place_face(c, spec) for c in prediction.face_crops],
                                                          imagenet))).squeeze(1).double().numpy()
    assert prediction.face_scores[0] == pytest.approx(expected, abs=1e-6)
    assert abs(prediction.face_scores[0] - other).max() > 1e-3  # the spec's normalisation made the difference


def test_multi_gpu_batch_norm_sync_keeps_every_familys_activations():
    import copy

    from models.registry import convert_sync_batchnorm

    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    clip = torch.rand(2, 3, 4, 48, 48)
    for config, x in (({"encoder": ENCODER}, image),
                      ({"family": "inflated3d", "encoder": ENCODER}, clip),
                      ({"family": "video_resnet", "encoder": "r2plus1d_18"}, clip)):
        model = create_model(config).eval()
        synced = convert_sync_batchnorm(copy.deepcopy(model)).eval()
        kinds = {type(m).__name__ for m in synced.modules()}
        assert kinds & {"SyncBatchNorm", "SyncBatchNormAct"} and not kinds & {"BatchNorm2d", "BatchNorm3d",
                                                                              "BatchNormAct2d"}, kinds
        with torch.no_grad():  # eval mode: the same statistics, so the same logits
            torch.testing.assert_close(synced(x), model(x), rtol=1e-5, atol=1e-5)
    # torch's own conversion turns timm's batch norm + activation layers into bare batch norms: the
    # activations are gone and the network computes something else
    model = create_model({"encoder": ENCODER}).eval()
    torch_synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model)).eval()
    with torch.no_grad():
        assert not torch.allclose(torch_synced(image), model(image), atol=1e-2)
