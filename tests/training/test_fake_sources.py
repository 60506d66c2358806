"""The fake-source registry: the config's "fakes" picks an entry, unknown names are refused, and a toy
source registered by a test chooses the fakes of a real training run."""

from __future__ import annotations

import json
import math

import pytest

from core.input_spec import InputSpec
from tests.conftest import registered
from tests.training.test_train_classifier import TINY
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds, split_folds
from training.datasets.fake_sources import FAKE_SOURCES, FakeSource
from training.pipelines.train_classifier import TrainOptions, train
from training.tools.config import ConfigError, load_config

# a toy source: a quarter of the fakes from the data, the rest self-blended
QUARTER = FakeSource("a quarter of the data's fakes, the rest self-blended", lambda n_reals: n_reals // 4,
                     self_blends=True)
SPEC = InputSpec(size_px=64)


def _kinds(dataset: DeepFakeClassifierDataset) -> dict[str, int]:
    kinds = [(item[3], item[5]) for item in dataset.items]
    return {"reals": kinds.count((0.0, False)), "data fakes": kinds.count((1.0, False)),
            "blended": kinds.count((1.0, True))}


def test_the_built_in_sources_and_their_shares(preprocessed_root):
    assert FAKE_SOURCES.names() == ("real", "self_blended", "both")
    train_rows, _ = split_folds(read_folds(preprocessed_root), 0)
    n_reals = int((train_rows["label"] == 0).sum())
    n_fakes = int((train_rows["label"] == 1).sum())
    assert n_fakes >= n_reals  # the data has enough fakes for every share below
    expected = {"real": (n_reals, 0), "self_blended": (0, n_reals), "both": ((n_reals + 1) // 2, n_reals // 2)}
    for name, (data_fakes, blended) in expected.items():
        dataset = DeepFakeClassifierDataset(preprocessed_root, train_rows, "train", SPEC, seed=1, fakes=name)
        assert _kinds(dataset) == {"reals": n_reals, "data fakes": data_fakes, "blended": blended}, name


def test_unknown_sources_are_refused_with_the_known_ones_listed(preprocessed_root):
    with pytest.raises(ValueError, match=r"unknown fake source 'sbi'; known: real, self_blended, both$"):
        FAKE_SOURCES.get("sbi")
    folds = read_folds(preprocessed_root)
    with pytest.raises(ValueError, match="known: real, self_blended, both"):
        split_folds(folds, 0, fakes="sbi")
    with pytest.raises(ValueError, match="known: real, self_blended, both"):
        DeepFakeClassifierDataset(preprocessed_root, folds, "train", SPEC, fakes="sbi")
    with pytest.raises(ConfigError, match=r"fakes 'sbi' is not one of \('real', 'self_blended', 'both'\)"):
        load_config(None, ["fakes=sbi"])


def test_a_registered_source_chooses_the_fakes_of_a_training_run(preprocessed_root, tmp_path):
    train_rows, _ = split_folds(read_folds(preprocessed_root), 0)
    n_reals = int((train_rows["label"] == 0).sum())
    with registered(FAKE_SOURCES, "quarter", QUARTER):
        assert load_config(None, ["fakes=quarter"]).fakes == "quarter"
        dataset = DeepFakeClassifierDataset(preprocessed_root, train_rows, "train", SPEC, seed=1, fakes="quarter")
        assert _kinds(dataset) == {"reals": n_reals, "data fakes": n_reals // 4,
                                   "blended": n_reals - n_reals // 4}
        dataset.set_epoch(1)  # redrawn per epoch, the shares kept
        assert _kinds(dataset)["data fakes"] == n_reals // 4
        result = train(TrainOptions(data_dir=str(preprocessed_root), overrides=TINY + [
            "fakes=quarter", "epochs=1", "batches_per_epoch=2"], seed=111, progress=False,
            output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs")))
    assert len(result.step_losses) == 2 and all(math.isfinite(loss) for loss in result.step_losses)
    saved = json.loads((tmp_path / "weights" / f"{result.name}_args.json").read_text())
    assert saved["config"]["fakes"] == "quarter"
    assert "quarter" not in FAKE_SOURCES
    with pytest.raises(ConfigError, match="fakes 'quarter' is not one of"):
        load_config(None, ["fakes=quarter"])
