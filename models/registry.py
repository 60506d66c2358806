"""Model families by name: ``MODEL_FAMILIES`` (a ``core.registry.Registry`` of ``models.family.ModelFamily``).

The config's ``family`` chooses (``create_model(config)``, like timm's ``create_model``); a config or a
checkpoint that names none is the DFDC recipe's ``classifier2d`` (every config and checkpoint written
before families existed, and the DFDC winner's released checkpoints). Adding a family is one module
with a ``FAMILY`` entry and one line below (docs/models.md has a worked example).
"""

from __future__ import annotations

from torch import nn

from core.input_spec import InputSpec
from core.registry import Registry
from models import classifier2d
from models.family import ModelConfig, ModelFamily

MODEL_FAMILIES: Registry[ModelFamily] = Registry("model family")
MODEL_FAMILIES.register("classifier2d", classifier2d.FAMILY)

DEFAULT_FAMILY = "classifier2d"


def family_name(config: ModelConfig) -> str:
    """The family a config names (``family``), or the default for one that names none."""
    return str(config.get("family") or DEFAULT_FAMILY)


def get_family(config: ModelConfig) -> ModelFamily:
    """The registry entry of the config's family; ValueError listing the known ones."""
    return MODEL_FAMILIES.get(family_name(config))


def create_model(config: ModelConfig) -> nn.Module:
    """The config's network, randomly initialised (``get_family(config).init_weights`` loads pretrained
    weights, ``models.checkpoints.load_model`` trained ones)."""
    return get_family(config).build(config)


def input_spec(config: ModelConfig) -> InputSpec:
    """What the config's network takes as input."""
    return get_family(config).input_spec(config)
