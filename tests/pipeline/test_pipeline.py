"""The pipeline definition: configs reach their components; no training code is loaded to build it."""

import json
import subprocess
import sys
from pathlib import Path

from pipeline import configs
from pipeline.pipeline import create_pipeline

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
