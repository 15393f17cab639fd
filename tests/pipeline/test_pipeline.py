"""The pipeline definition: configs reach their components; no training code is loaded to build it."""

import json
import subprocess
import sys
from pathlib import Path

from pipeline import configs
from pipeline.pipeline import create_pipeline
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import ModelConfig
from trainer.config import RETRIEVAL_CONFIG_KEY
from trainer.config import RetrievalConfig

REPO = Path(__file__).resolve().parents[2]
# Modules of the training stack (TensorFlow models, TFRS): only the Trainer
# executors import them. TFX itself imports tensorflow_recommenders when it is
# installed (BulkInferrer), so the check is on the project's own modules.
TRAINING_STACK = ("trainer.run_fn", "trainer.pretrain_run_fn", "trainer.retrieval",
                  "trainer.model", "trainer.encoder", "trainer.inputs",
                  "trainer.pretraining.model")


def test_importing_the_pipeline_definition_loads_only_the_config_modules():
  code = ("import json, sys; import pipeline.pipeline; "
          "print(json.dumps(sorted(m for m in sys.modules if m.startswith('trainer'))))")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=True)
  loaded = json.loads(result.stdout.strip().splitlines()[-1])
  assert "trainer.config" in loaded
  assert not set(TRAINING_STACK) & set(loaded), loaded


def test_slice_gates_of_the_evaluation_config_reach_the_evaluator(tmp_path):
  gate = {"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}
  config = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                  output_root=str(tmp_path / "out"), use_item_table=False)
  config.evaluation.slice_gates = [gate]
  evaluator, = [c for c in create_pipeline(config).components if c.id == "RankingEvaluator"]
  assert json.loads(evaluator.exec_properties["slice_gates"]) == [gate]


def test_cold_items_reach_the_sequence_builder_and_item_vectors_the_evaluator(tmp_path):
  config = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                  output_root=str(tmp_path / "out"), use_item_table=False,
                                  item_vectors="v.parquet")
  config.sequence.cold_item_fraction, config.sequence.cold_item_seed = 0.1, 5
  by_id = {c.id: c for c in create_pipeline(config).components}
  builder = by_id["SequenceBuilder"].exec_properties
  assert (builder["cold_item_fraction"], builder["cold_item_seed"]) == (0.1, 5)
  assert by_id["RankingEvaluator"].exec_properties["item_vectors"] == "v.parquet"
  default = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                   output_root=str(tmp_path / "out"), use_item_table=False)
  by_id = {c.id: c for c in create_pipeline(default).components}
  assert by_id["SequenceBuilder"].exec_properties["cold_item_fraction"] == 0.0
  assert by_id["RankingEvaluator"].exec_properties["item_vectors"] is None


def _custom_configs(config) -> dict:
  """Trainer id -> its custom_config."""
  trainers = [c for c in create_pipeline(config).components if "Trainer" in c.id]
  return {c.id: json.loads(c.exec_properties["custom_config"]) for c in trainers}


def test_the_item_vectors_file_reaches_both_trainers_only_when_given(tmp_path):
  config = configs.PipelineConfig(
      data_root=str(tmp_path / "data"), output_root=str(tmp_path / "out"), use_item_table=False,
      model=ModelConfig.from_dict({"item_representation": "id+text"}), item_vectors="v.parquet")
  custom = _custom_configs(config)
  assert sorted(custom) == ["PretrainTrainer", "Trainer"]
  assert all(c[ITEM_VECTORS_KEY] == "v.parquet" for c in custom.values())
  config = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                  output_root=str(tmp_path / "out"), use_item_table=False)
  assert all(ITEM_VECTORS_KEY not in c for c in _custom_configs(config).values())


def test_the_untrained_items_switch_reaches_both_trainers(tmp_path):
  config = configs.PipelineConfig(
      data_root=str(tmp_path / "data"), output_root=str(tmp_path / "out"), use_item_table=False,
      retrieval=RetrievalConfig(exclude_untrained_items=False))
  custom = _custom_configs(config)
  assert sorted(custom) == ["PretrainTrainer", "Trainer"]
  assert all(c[RETRIEVAL_CONFIG_KEY]["exclude_untrained_items"] is False
             for c in custom.values())


def test_the_bulk_recommender_follows_the_pusher_only_when_configured(tmp_path):
  config = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                  output_root=str(tmp_path / "out"), use_item_table=False)
  assert "BulkRecommender" not in [c.id for c in create_pipeline(config).components]
  config.bulk_recommendations = configs.BulkRecommendConfig(k=7, output_format="csv")
  bulk, = [c for c in create_pipeline(config).components if c.id == "BulkRecommender"]
  assert bulk.exec_properties["k"] == 7 and bulk.exec_properties["output_format"] == "csv"
  assert bulk.inputs["pushed_model"].producer_component_id == "AtomicPusher"
  assert bulk.inputs["examples"].producer_component_id == "SequenceBuilder"
  config.bulk_recommendations = configs.BulkRecommendConfig(
      rules_file="/rules.jsonl", extra_inputs={"exclude_ids": ["i1"]})
  bulk, = [c for c in create_pipeline(config).components if c.id == "BulkRecommender"]
  assert bulk.exec_properties["rules_file"] == "/rules.jsonl"
  assert bulk.exec_properties["extra_inputs"] == '{"exclude_ids": ["i1"]}'
