"""The runners' shared flags and the one function that turns them into a PipelineConfig."""

import argparse

import pytest

from pipeline import configs
from trainer.config import ModelConfig
from trainer.config import WarmStartConfig
from trainer.pretraining.config import PretrainConfig


def _args(*argv):
  parser = argparse.ArgumentParser()
  configs.add_flags(parser)
  return parser.parse_args(list(argv))


def test_no_flags_give_the_defaults():
  config = configs.from_flags(_args(), data_root="d", output_root="o")
  assert config == configs.PipelineConfig(data_root="d", output_root="o")


def test_every_flag_reaches_its_field():
  config = configs.from_flags(
      _args("--pipeline-name", "p", "--model-config", '{"max_seq_len": 20, "epochs": 4}',
            "--epochs", "7", "--pretrain-config", '{"epochs": 2}',
            "--retrieval-config", '{"targets": "last_position"}', "--min-interactions", "3",
            "--max-history-length", "100", "--min-ndcg", "0.01", "--schema", "s.pbtxt",
            "--beam-arg=--direct_num_workers=2", "--enable-cache",
            "--drift-config", '{"max_item_distance": 0.5}',
            "--cold-item-fraction", "0.1", "--cold-item-seed", "4"),
      data_root="d", output_root="o", serving_root="serve")
  assert config.pipeline_name == "p"
  assert config.model.encoder.max_seq_len == 20 and config.model.schedule.epochs == 7
  assert config.pretrain.schedule.epochs == 2
  assert config.retrieval.targets == "last_position"
  assert (config.sequence.min_interactions, config.sequence.max_history_length) == (3, 100)
  assert (config.sequence.cold_item_fraction, config.sequence.cold_item_seed) == (0.1, 4)
  assert config.evaluation.min_value == 0.01
  assert config.schema_path == "s.pbtxt" and config.enable_cache
  assert config.beam_pipeline_args == ["--direct_num_workers=2"]
  assert config.serving_root == "serve"
  assert config.drift == configs.DriftConfig(max_item_distance=0.5)


def test_runner_settings_win_and_pretraining_can_be_switched_off():
  config = configs.from_flags(_args("--pretrain-config", configs.NO_PRETRAINING,
                                    "--drift-config", configs.NO_DRIFT_CHECK),
                              data_root="d", output_root="o",
                              default_pipeline_name="seqrec-x", enable_cache=True)
  assert config.pretrain is None and config.enable_cache
  assert config.drift is None
  assert config.pipeline_name == "seqrec-x"


def test_a_bad_json_field_is_named():
  with pytest.raises(ValueError, match=r"Unknown ModelConfig field\(s\) \['epoch'\]"):
    configs.from_flags(_args("--model-config", '{"epoch": 3}'), data_root="d", output_root="o")
  with pytest.raises(ValueError, match="TrainingSchedule.epochs must be >= 1"):
    configs.from_flags(_args("--epochs", "0"), data_root="d", output_root="o")
  with pytest.raises(ValueError, match=r"DriftConfig.max_events_per_user_ratio must be >= 1"):
    configs.from_flags(_args("--drift-config", '{"max_events_per_user_ratio": 0.5}'),
                       data_root="d", output_root="o")


def test_describe_is_a_few_readable_lines():
  config = configs.PipelineConfig(data_root="d", model=ModelConfig.from_dict(
      {"filter_weight": 0.7, "epochs": 1, "early_stopping_patience": 5}))
  encoder, fine_tuning, pretraining = configs.describe(config)
  assert encoder.startswith("Encoder: 2 blocks x 2 heads, d = 64, feed-forward 64, history 50")
  assert "frequency filter 0.7 (3 bins)" in encoder
  assert fine_tuning.startswith("Fine-tuning: 1 epoch, batch 256, learning rate 0.001")
  assert "early stopping after 5 epochs" in fine_tuning
  assert pretraining == ("Pre-training: 10 epochs, batch 256, learning rate 0.001, seed 42; "
                         "objectives masked_item 1, attribute 0.2, contrastive 0.1, "
                         "clustering 0.1")
  config.pretrain = None
  assert configs.describe(config)[2] == "Pre-training: off"
  assert "served model" not in configs.describe(config)[1]
  config.model.warm_start = WarmStartConfig(warm_learning_rate=0.002, warm_decay_epochs=5)
  assert configs.describe(config)[1].endswith(
      "; from the served model: learning rate 0.002, cosine decay over 5 epochs")
  config.model.warm_start = WarmStartConfig(carry_optimizer=True)
  assert configs.describe(config)[1].endswith(
      "; from the served model: learning rate 0.001, Adam's state carried over")
  config.model.warm_start = WarmStartConfig(shrink=0.7)
  assert configs.describe(config)[1].endswith(
      "; from the served model: learning rate 0.001, weights shrunk to 0.7")
  config.pretrain = PretrainConfig(masked_item_weight=0.0, next_item_weight=1.0,
                                   attribute_weight=0.0, contrastive_weight=0.0,
                                   clustering_weight=0.0)
  assert configs.describe(config)[2].endswith("; objectives next_item 1")


def test_text_items_need_an_item_vectors_file():
  text = '{"item_representation": "text"}'
  config = configs.from_flags(_args("--model-config", text, "--item-vectors", "v.parquet"),
                              data_root="d", output_root="o")
  assert config.item_vectors == "v.parquet"
  assert "text items (8-expert adaptor)" in configs.describe(config)[0]
  with pytest.raises(ValueError, match="'text' needs item vectors: --item-vectors PATH"):
    configs.from_flags(_args("--model-config", text), data_root="d", output_root="o")


def test_bulk_recommendations_are_off_unless_asked_for():
  assert configs.from_flags(_args(), data_root="d", output_root="o").bulk_recommendations is None
  on = configs.from_flags(_args("--bulk-recommendations", configs.ON), data_root="d",
                          output_root="o")
  assert on.bulk_recommendations == configs.BulkRecommendConfig()
  csv = configs.from_flags(_args("--bulk-recommendations", '{"k": 20, "output_format": "csv"}'),
                           data_root="d", output_root="o")
  assert csv.bulk_recommendations == configs.BulkRecommendConfig(k=20, output_format="csv")
  with pytest.raises(ValueError, match="BulkRecommendConfig.output_format must be one of"):
    configs.from_flags(_args("--bulk-recommendations", '{"output_format": "xml"}'),
                       data_root="d", output_root="o")
  rules = configs.from_flags(_args("--bulk-recommendations",
                                   '{"rules_file": "r.jsonl", "extra_inputs": {"diversity": 0.2}}'),
                             data_root="d", output_root="o")
  assert rules.bulk_recommendations == configs.BulkRecommendConfig(
      rules_file="r.jsonl", extra_inputs={"diversity": 0.2})
  with pytest.raises(ValueError, match="BulkRecommendConfig.extra_inputs must be a JSON object"):
    configs.from_flags(_args("--bulk-recommendations", '{"extra_inputs": [1]}'),
                       data_root="d", output_root="o")
