"""Fixtures of the trainer tests: the fake Transform output the strategy workers train on."""

import pytest

from tests.trainer import fake_transform


@pytest.fixture(scope="session")
def transform_root(tmp_path_factory):
  """``fake_transform.write(..., graph=True)`` output (slow: runs tf.Transform once)."""
  root = tmp_path_factory.mktemp("transform")
  fake_transform.write(root, graph=True)
  return root
