"""The pre-training run_fn: trains, logs every objective and hands its encoder to fine-tuning."""

import dataclasses
import json
import os
import types

import numpy as np
import pytest

from tests.trainer import fake_transform
from tests.trainer import strategy_worker as workers
from trainer import features
from trainer import item_vectors
from trainer import pretrain_run_fn
from trainer import warm_start
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.retrieval import RetrievalModel

V = fake_transform.V
CONFIG = EncoderConfig(max_seq_len=6, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                       dropout=0.0)


def _fn_args(tmp_path, custom_config) -> types.SimpleNamespace:
  """The Trainer's fn_args on the fake Transform output written under ``tmp_path``."""
  transform_dir, examples = fake_transform.write(tmp_path)
  return types.SimpleNamespace(
      transform_output=transform_dir,
      train_files=fake_transform.split_files(examples, features.TRAIN_SPLIT),
      eval_files=fake_transform.split_files(examples, features.EVAL_SPLIT),
      serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
      model_run_dir=str(tmp_path / "model_run"),
      custom_config=custom_config)


def test_run_fn_pretrains_an_encoder_fine_tuning_warm_starts_from(tmp_path):
  fn_args = _fn_args(tmp_path, {
      pretrain_run_fn.MODEL_CONFIG_KEY: dataclasses.asdict(CONFIG),
      pretrain_run_fn.PRETRAIN_CONFIG_KEY: {
          "masked_item_weight": 1.0, "attribute_weight": 0.5, "contrastive_weight": 0.0,
          "clustering_weight": 0.0, "epochs": 2, "batch_size": 64},
  })
  pretrain_run_fn.run_fn(fn_args)

  with open(os.path.join(fn_args.model_run_dir, "history.json")) as f:
    history = json.load(f)
  assert set(history) >= {"loss", "masked_item_loss", "attribute_loss", "val_loss"}
  assert len(history["loss"]) == 2
  assert os.path.isdir(fn_args.serving_model_dir)   # TFX's Trainer checks it exists

  # The fine-tuning run_fn gets this Model as base_model (fn_args.base_model), with
  # the attribute objective's embeddings for its candidate tower.
  attributes = ItemAttributeTable([[j % fake_transform.NUM_ATTRIBUTES] for j in range(V)],
                                  fake_transform.NUM_ATTRIBUTES)
  model = RetrievalModel(V, dataclasses.replace(CONFIG, dropout=0.1), RetrievalConfig(),
                         attributes)
  fresh = model.encoder.item_embeddings.numpy()
  fresh_attributes = model.attribute_table.embeddings.numpy()
  attribute_vocab = [f"attr{a}" for a in range(fake_transform.NUM_ATTRIBUTES)]
  stats = warm_start.restore(model, fake_transform.ITEM_VOCAB, fn_args.serving_model_dir,
                             attribute_vocab)
  assert stats == {"weights": len(model.encoder.weights), "items_kept": V, "items_new": 0,
                   "attributes_kept": fake_transform.NUM_ATTRIBUTES}
  assert not np.array_equal(fresh, model.encoder.item_embeddings.numpy())
  assert not np.array_equal(fresh_attributes, model.attribute_table.embeddings.numpy())


def test_run_fn_names_the_items_split_it_cannot_find(tmp_path):
  transform_dir, _ = fake_transform.write(tmp_path)
  fn_args = types.SimpleNamespace(
      transform_output=transform_dir, train_files=[str(tmp_path / "elsewhere" / "*")],
      eval_files=[], serving_model_dir=str(tmp_path / "out"), model_run_dir=str(tmp_path / "run"),
      custom_config={pretrain_run_fn.PRETRAIN_CONFIG_KEY: {"attribute_weight": 0.5}})
  with pytest.raises(ValueError, match="Cannot derive the 'items' split"):
    pretrain_run_fn.run_fn(fn_args)


def test_run_fn_pretrains_text_items_from_the_item_vectors_file(tmp_path):
  vectors = np.random.default_rng(0).normal(size=[V, 6]).astype(np.float32)
  path = item_vectors.write_vectors(   # the file's order is not the vocabulary's
      item_vectors.ItemVectors(fake_transform.ITEM_VOCAB[::-1], vectors[::-1], "test"),
      str(tmp_path / "vectors"))
  config = dataclasses.replace(CONFIG, item_representation="text", adaptor_experts=2)
  fn_args = _fn_args(tmp_path, {
      pretrain_run_fn.MODEL_CONFIG_KEY: dataclasses.asdict(config),
      pretrain_run_fn.PRETRAIN_CONFIG_KEY: {"attribute_weight": 0.0, "epochs": 1,
                                            "batch_size": 64},
      ITEM_VECTORS_KEY: path,
  })
  pretrain_run_fn.run_fn(fn_args)

  model = RetrievalModel(V, config, RetrievalConfig(), item_vectors=vectors)
  fresh = model.encoder.item_text.adaptor.projection.numpy()
  stats = warm_start.restore(model, fake_transform.ITEM_VOCAB, fn_args.serving_model_dir)
  assert stats["weights"] == len(model.encoder.trained_weights)
  assert not np.array_equal(fresh, model.encoder.item_text.adaptor.projection.numpy())


# Pre-training under each strategy, as the fine-tuning run_fn is tested
# (tests/trainer/test_run_fn.py): same losses as one device within
# strategy_worker.LOSS_RTOL, only the chief writes.

@pytest.fixture(scope="module")
def one_device(transform_root, tmp_path_factory):
  """History of pre-training on the default strategy (one device)."""
  run = workers.train_on_one_device(transform_root, tmp_path_factory.mktemp("default") / "out",
                                    workers.PRE_TRAINING)
  assert set(run) == {"loss", "next_item_loss", "val_loss", "val_next_item_loss"}
  return run


def _assert_encoder_saved(out) -> None:
  path = warm_start.warm_start_dir(os.path.join(out, "model", "Format-Serving"))
  assert os.path.isdir(path) and os.listdir(path), "no encoder saved"


def test_pretraining_mirrored_over_two_logical_cpus_trains_like_one_device(
    transform_root, one_device, tmp_path):
  out = tmp_path / "mirrored"
  workers.finish(workers.start("mirrored", transform_root, out, logical_cpus=2,
                               trainer_name=workers.PRE_TRAINING))
  assert workers.replicas(out) == 2
  workers.assert_same_metrics(workers.history(out), one_device)
  _assert_encoder_saved(out)


def test_pretraining_on_two_local_workers_trains_like_one_device_and_only_the_chief_writes(
    transform_root, one_device, tmp_path):
  outs = [tmp_path / "chief", tmp_path / "worker1"]
  workers.finish(*workers.start_cluster("multi_worker_mirrored", transform_root, outs,
                                        trainer_name=workers.PRE_TRAINING))
  assert [workers.replicas(out) for out in outs] == [2, 2]
  workers.assert_same_metrics(workers.history(outs[0]), one_device)
  _assert_encoder_saved(outs[0])
  assert os.listdir(outs[1]) == ["replicas.json"], "the non-chief worker wrote outputs"
  assert not os.listdir(str(outs[1]) + "-tmp"), "the non-chief worker left scratch files"
