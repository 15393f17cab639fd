"""The pipeline definition reads the Trainers' config keys without loading the training code."""

import json
import subprocess
import sys
from pathlib import Path

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
