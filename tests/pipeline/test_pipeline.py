"""The pipeline definition wires the configs into its components (no run)."""

import json

from pipeline import configs
from pipeline.pipeline import create_pipeline


def test_slice_gates_of_the_evaluation_config_reach_the_evaluator(tmp_path):
  gate = {"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}
  config = configs.PipelineConfig(data_root=str(tmp_path / "data"),
                                  output_root=str(tmp_path / "out"), use_item_table=False)
  config.evaluation.slice_gates = [gate]
  evaluator, = [c for c in create_pipeline(config).components if c.id == "RankingEvaluator"]
  assert json.loads(evaluator.exec_properties["slice_gates"]) == [gate]
