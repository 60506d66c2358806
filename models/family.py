"""What a model family is: the entry ``models.registry.MODEL_FAMILIES`` holds for each name.

A family turns a config (a mapping: the training config, or the one a checkpoint stored) into a network
and says what input that network takes. Every function receives the whole config and reads the keys
it knows (``encoder``, ``size``, ``dropout``...), so one config format serves every family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from core.input_spec import InputSpec

ModelConfig = Mapping[str, Any]


def no_initial_weights(model: nn.Module, config: ModelConfig) -> str:
    """For a family without pretrained weights: the network keeps its random initialisation."""
    return "random initialisation"


@dataclass(frozen=True)
class ModelFamily:
    """``build(config) -> nn.Module`` (random weights, one logit per sample), ``input_spec(config) ->
    InputSpec``, and ``init_weights(model, config) -> str``: the pretrained weights a new training run
    starts from (the config's ``pretrained``), returning where they came from."""

    build: Callable[[ModelConfig], nn.Module]
    input_spec: Callable[[ModelConfig], InputSpec]
    init_weights: Callable[[nn.Module, ModelConfig], str] = no_initial_weights
    description: str = ""
