"""Shared fixtures (one tiny end-to-end pipeline run serves every test that needs a real model)
and the grouping of tests over `make test`'s xdist workers."""

import os
from pathlib import Path

import pytest

import trainer  # pylint: disable=unused-import  (selects Keras 2 before any test imports TensorFlow)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_MODEL_CONFIG = '{"epochs": 3, "embedding_dim": 32, "ff_dim": 32, "max_seq_len": 20, "batch_size": 64}'
TINY_PRETRAIN_CONFIG = '{"epochs": 2, "batch_size": 64, "num_clusters": 8, "kmeans_iterations": 5}'
# local_runner flags of the tiny run (all but --output-dir).
TINY_FLAGS = ("--synthetic-size", "tiny", "--model-config", TINY_MODEL_CONFIG,
              "--pretrain-config", TINY_PRETRAIN_CONFIG, "--min-interactions", "3")
# The tiny_run fixture also writes bulk recommendations after the push.
TINY_BULK_CONFIG = '{"k": 5, "output_format": "csv"}'


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """Runs the whole TFX pipeline once on tiny synthetic data.

  Returns (PipelineConfig, summary dict). Tests must only read its outputs.
  """
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("tiny_run")
  args = local_runner.parse_args([*TINY_FLAGS, "--bulk-recommendations", TINY_BULK_CONFIG,
                                  "--output-dir", str(out)])
  config = local_runner.build_config(args)
  local_runner.prepare_data(args, config.data_root)
  summary = local_runner.run(config)
  return config, summary


@pytest.fixture(scope="session")
def pushed_model_path(tiny_run):
  """Path of the newest version the tiny run pushed (``<serving>/<model>/<version>``)."""
  config, summary = tiny_run
  assert summary.get("pushed"), f"tiny run pushed nothing: {summary}"
  return summary["pushed_destination"]


# Session fixtures whose tests share one xdist worker (`make test` runs two), so each is
# built once.
_SHARED_SESSION_FIXTURES = ("tiny_run", "transform_root")


def pytest_collection_modifyitems(config, items):
  """Groups the tests for ``pytest -n N --dist loadgroup``: a file's tests stay on one worker
  (module fixtures are built once), and the files that use one of the session fixtures
  above go with that fixture's group."""
  if not config.pluginmanager.hasplugin("xdist"):
    return
  by_file = {}
  for item in items:
    by_file.setdefault(item.path, []).append(item)
  for path, file_items in by_file.items():
    shared = [name for name in _SHARED_SESSION_FIXTURES
              if any(name in item.fixturenames for item in file_items)]
    for item in file_items:
      item.add_marker(pytest.mark.xdist_group(shared[0] if shared else str(path)))
