"""ModelConfig: encoder shape and training schedule, from the JSON users write."""

import pytest

from trainer.config import EncoderConfig
from trainer.config import ModelConfig
from trainer.config import RetrievalConfig
from trainer.config import WarmStartConfig
from trainer.config import load_model_config
from trainer.pretraining.config import PretrainConfig
from trainer.training_schedule import TrainingSchedule


def test_flat_model_config_keys_reach_the_encoder_and_the_schedule():
  config = load_model_config('{"epochs": 40, "max_seq_len": 200, "early_stopping_patience": 3}')
  assert config == ModelConfig(encoder=EncoderConfig(max_seq_len=200),
                               schedule=TrainingSchedule(epochs=40), early_stopping_patience=3)
  assert load_model_config(config.to_json()) == config
  assert load_model_config(None) == ModelConfig()


def test_model_config_file_is_read(tmp_path):
  path = tmp_path / "recipe.json"
  path.write_text('{"encoder": {"dropout": 0.5}, "schedule": {"learning_rate": 0.0005}}')
  config = load_model_config(str(path))
  assert config.encoder.dropout == 0.5 and config.schedule.learning_rate == 0.0005


def test_unknown_model_config_key_is_named():
  with pytest.raises(ValueError, match=r"Unknown ModelConfig field\(s\) \['epoch'\]"):
    load_model_config('{"epoch": 3}')


def test_pretraining_schedule_keeps_its_own_defaults():
  assert PretrainConfig().schedule == TrainingSchedule(epochs=10)
  config = PretrainConfig.from_dict({"learning_rate": 0.01, "seed": 3})
  assert config.schedule == TrainingSchedule(epochs=10, learning_rate=0.01, seed=3)
  assert PretrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("values, message", [
    ({"epochs": 0}, "TrainingSchedule.epochs must be >= 1"),
    ({"batch_size": 0}, "TrainingSchedule.batch_size must be >= 1"),
    ({"learning_rate": 0.0}, "TrainingSchedule.learning_rate must be > 0"),
    ({"attention": "sideways"}, "EncoderConfig.attention must be one of"),
    ({"mixed_precision": "float16"}, "TrainingSchedule.mixed_precision must be one of"),
])
def test_bad_values_are_refused_naming_the_field(values, message):
  with pytest.raises(ValueError, match=message):
    ModelConfig.from_dict(values)
  if "attention" not in values:
    with pytest.raises(ValueError, match=message):
      PretrainConfig.from_dict(values)


@pytest.mark.parametrize("field", ["loss", "negatives", "targets"])
def test_retrieval_choices_are_checked(field):
  with pytest.raises(ValueError, match=f"RetrievalConfig.{field} must be one of"):
    RetrievalConfig.from_dict({field: "bogus"})


@pytest.mark.parametrize("values, message", [
    ({"item_representation": "words"}, "EncoderConfig.item_representation must be one of"),
    ({"adaptor_experts": 0}, "EncoderConfig.adaptor_experts must be >= 1"),
    ({"adaptor_dropout": 1.0}, r"EncoderConfig.adaptor_dropout must be in \[0, 1\)"),
    ({"id_dropout": -0.1}, r"EncoderConfig.id_dropout must be in \[0, 1\)"),
])
def test_item_representation_settings_are_checked(values, message):
  with pytest.raises(ValueError, match=message):
    ModelConfig.from_dict(values)


def test_items_are_ids_unless_the_config_says_text():
  assert EncoderConfig().item_representation == "id"
  text = load_model_config('{"item_representation": "id+text", "adaptor_experts": 4}').encoder
  assert text.uses_item_ids and text.uses_item_text and text.adaptor_experts == 4
  assert not EncoderConfig(item_representation="text").uses_item_ids


def test_speed_settings_default_off_and_read_flat_or_nested():
  assert TrainingSchedule().mixed_precision == "float32"
  assert TrainingSchedule().jit_compile is False
  flat = ModelConfig.from_dict({"mixed_precision": "auto", "jit_compile": True})
  assert flat.schedule == TrainingSchedule(mixed_precision="auto", jit_compile=True)
  assert PretrainConfig.from_dict({"schedule": {"mixed_precision": "bfloat16"}}
                                  ).schedule.mixed_precision == "bfloat16"


def test_the_warm_start_section_reads_flat_or_nested_and_defaults_to_the_schedule():
  assert not ModelConfig().warm_start.is_set
  flat = load_model_config('{"warm_learning_rate": 0.002, "warm_decay_epochs": 5}')
  nested = load_model_config('{"warm_start": {"warm_learning_rate": 0.002, '
                             '"warm_decay_epochs": 5}}')
  assert flat == nested and flat.warm_start == WarmStartConfig(0.002, 5)
  assert flat.warm_start.is_set and WarmStartConfig(warm_warmup_steps=10).is_set


@pytest.mark.parametrize("values, message", [
    ({"warm_learning_rate": -1e-3}, "WarmStartConfig.warm_learning_rate must be >= 0"),
    ({"warm_decay_epochs": -1}, "WarmStartConfig.warm_decay_epochs must be >= 0"),
    ({"warm_warmup_steps": -5}, "WarmStartConfig.warm_warmup_steps must be >= 0"),
    ({"shrink": 0.0}, "WarmStartConfig.shrink must be in \\(0, 1\\]"),
    ({"shrink": 1.5}, "WarmStartConfig.shrink must be in \\(0, 1\\]"),
])
def test_bad_warm_start_values_are_refused_naming_the_field(values, message):
  with pytest.raises(ValueError, match=message):
    ModelConfig.from_dict(values)
