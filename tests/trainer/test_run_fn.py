"""Trainer wiring: the distribution strategy is a config switch."""

import typing

import pytest
import tensorflow as tf

from trainer import run_fn
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import DistributionStrategy
from trainer.config import ModelConfig
from trainer.training_schedule import TrainingSchedule


def test_strategy_names_map_to_tf_distribute_strategies():
  assert set(run_fn.STRATEGIES) == set(typing.get_args(DistributionStrategy))
  assert isinstance(run_fn.distribution_strategy("mirrored"), tf.distribute.MirroredStrategy)
  assert run_fn.distribution_strategy("default") is tf.distribute.get_strategy()


def test_unknown_strategy_is_a_clear_error():
  with pytest.raises(ValueError, match="distribution_strategy must be one of"):
    ModelConfig.from_dict({"distribution_strategy": "tpu-pod"})


def test_model_config_comes_from_custom_config_and_rejects_unknown_fields():
  config = run_fn.model_config_from({MODEL_CONFIG_KEY: {"epochs": 3}})
  assert config == ModelConfig(schedule=TrainingSchedule(epochs=3))
  with pytest.raises(ValueError, match="Unknown ModelConfig field"):
    run_fn.model_config_from({MODEL_CONFIG_KEY: {"epoch": 3}})
