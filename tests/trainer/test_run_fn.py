"""Trainer wiring: the distribution strategy is a config switch, and each strategy trains alike."""

import json
import logging
import os
import typing

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import batches
from tests.trainer import fake_transform
from tests.trainer import strategy_worker as workers
from trainer import cpu_features
from trainer import item_vectors
from trainer import run_fn
from trainer import tasks
from trainer import warm_start
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import EncoderConfig
from trainer.config import DistributionStrategy
from trainer.config import ModelConfig
from trainer.config import RetrievalConfig
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.model import PretrainingModel
from trainer.retrieval import RetrievalModel
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


def _vectors_file(tmp_path) -> str:
  vectors = item_vectors.ItemVectors(["b", "a", "z"], np.arange(9, dtype=np.float32).reshape(3, 3),
                                     "test")
  return item_vectors.write_vectors(vectors, str(tmp_path))


def test_item_vectors_are_aligned_to_the_vocabulary_by_raw_id(tmp_path, caplog):
  config = {ITEM_VECTORS_KEY: _vectors_file(tmp_path)}
  with caplog.at_level(logging.INFO):
    vectors = run_fn.item_vectors_from(config, EncoderConfig(item_representation="id+text"),
                                       ["a", "new", "b"])
  np.testing.assert_array_equal(vectors, [[3, 4, 5], [0, 0, 0], [0, 1, 2]])
  assert "3-d for 2 of 3 catalogue items (1 without one: zeros)" in caplog.text


def test_text_items_need_a_vector_for_every_vocabulary_item(tmp_path):
  config = {ITEM_VECTORS_KEY: _vectors_file(tmp_path)}
  text = EncoderConfig(item_representation="text")
  assert run_fn.item_vectors_from(config, text, ["a", "b"]).shape == (2, 3)
  with pytest.raises(ValueError, match=r"no vector for 2 of 4 catalogue items "
                                       r"\(e.g. item_id 'new'\).*or use 'id\+text'"):
    run_fn.item_vectors_from(config, text, ["a", "new", "b", "newer"])
  with pytest.raises(ValueError, match="needs item vectors: custom_config\\['item_vectors'\\]"):
    run_fn.item_vectors_from({}, text, ["a"])


def test_id_items_read_no_vectors(tmp_path):
  config = {ITEM_VECTORS_KEY: str(tmp_path / "never-read.parquet")}
  assert run_fn.item_vectors_from(config, EncoderConfig(), ["a"]) is None


def _served_attributes(transform_dir, examples):
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  attributes = run_fn.serving_attributes(tft.TFTransformOutput(transform_dir),
                                         fake_transform.split_files(examples, "train"))
  index = attributes.indices(tf.constant([f"attr{a}" for a in range(5)])).numpy()
  return attributes, index, sorted(map(tuple, attributes.pairs.numpy().tolist()))


def test_serving_attributes_come_from_the_items_split_and_attribute_vocabulary(tmp_path):
  attributes, index, pairs = _served_attributes(*fake_transform.write(tmp_path))
  assert attributes.num_items == fake_transform.V
  assert index.tolist() == [0, 1, 2, 3, -1]
  # Item j has attribute j % NUM_ATTRIBUTES; the OOV attribute is dropped.
  assert pairs == [(j, j % fake_transform.NUM_ATTRIBUTES) for j in range(fake_transform.V)]


def test_serving_attributes_are_empty_without_an_attribute_vocabulary(tmp_path):
  transform_dir, examples = fake_transform.write(tmp_path)
  vocab = os.path.join(transform_dir, "transform_fn", "assets", "attribute_vocab")
  with open(vocab, "w", encoding="utf-8"):
    pass
  attributes, index, pairs = _served_attributes(transform_dir, examples)
  assert attributes.num_items == fake_transform.V
  assert index.tolist() == [-1] * 5 and pairs == []


# Training under each strategy, each in a fresh process (tests/trainer/strategy_worker.py).

@pytest.fixture(scope="module")
def one_device_out(transform_root, tmp_path_factory):
  """Output folder of the run on the default strategy (one device)."""
  out = tmp_path_factory.mktemp("default") / "out"
  workers.train_on_one_device(transform_root, out)
  return out


@pytest.fixture(scope="module")
def one_device(one_device_out):
  """History of the run on the default strategy, the reference of the others."""
  return workers.history(one_device_out)


def test_mirrored_over_two_logical_cpus_trains_like_one_device(transform_root, one_device,
                                                               tmp_path):
  out = tmp_path / "mirrored"
  workers.finish(workers.start("mirrored", transform_root, out, logical_cpus=2))
  assert workers.replicas(out) == 2
  workers.assert_same_metrics(workers.history(out), one_device)
  assert tf.saved_model.contains_saved_model(str(out / "model" / "Format-Serving"))


def test_two_local_workers_train_like_one_device_and_only_the_chief_writes(
    transform_root, one_device, tmp_path):
  outs = [tmp_path / "chief", tmp_path / "worker1"]
  workers.finish(*workers.start_cluster("multi_worker_mirrored", transform_root, outs))
  assert [workers.replicas(out) for out in outs] == [2, 2]
  workers.assert_same_metrics(workers.history(outs[0]), one_device)
  assert tf.saved_model.contains_saved_model(str(outs[0] / "model" / "Format-Serving"))
  assert os.listdir(outs[1]) == ["replicas.json"], "the non-chief worker wrote outputs"
  assert not os.listdir(str(outs[1]) + "-tmp"), "the non-chief worker left scratch files"


@pytest.mark.parametrize("flags, setting, expected", [
    ("avx2 avx512_bf16", "auto", tf.bfloat16), ("avx2", "auto", tf.float32),
    ("avx2", "bfloat16", tf.bfloat16), ("avx2 amx_bf16", "float32", tf.float32)])
def test_compile_model_honours_the_schedule_speed_settings(monkeypatch, flags, setting,
                                                            expected):
  monkeypatch.setattr(cpu_features, "cpu_flags", lambda path=None: frozenset(flags.split()))
  model = RetrievalModel(20, EncoderConfig(max_seq_len=4, embedding_dim=8, ff_dim=8),
                         RetrievalConfig(use_item_attributes=False))
  jit = setting == "bfloat16"
  run_fn.compile_model(model, TrainingSchedule(learning_rate=0.01, mixed_precision=setting,
                                               jit_compile=jit))
  assert model._jit_compile is jit   # pylint: disable=protected-access
  assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
  assert [t.matmul_dtype for t in model.submodules if isinstance(t, tasks.NextItemTask)
          ] == [expected]


def test_the_warm_start_schedule_applies_only_from_a_fine_tuned_model(tmp_path):
  """A nightly retrain from yesterday's fine-tuned model takes ModelConfig.warm_start's
  rate; from a pre-trained encoder (or nothing copied, or none set) the schedule's."""
  encoder = EncoderConfig(max_seq_len=4, embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1)
  model = RetrievalModel(3, encoder, RetrievalConfig(use_item_attributes=False))
  fine_tuned = str(tmp_path / "fine-tuned" / "Format-Serving")
  warm_start.save(model, ["a", "b", "c"], fine_tuned)
  pretrained = str(tmp_path / "pretrained" / "Format-Serving")
  warm_start.save(PretrainingModel(3, encoder, PretrainConfig(attribute_weight=0.0)),
                  ["a", "b", "c"], pretrained)
  config = ModelConfig.from_dict({"learning_rate": 5e-4, "warm_learning_rate": 2e-3,
                                  "warm_decay_epochs": 5})
  copied = {"weights": 9}

  def schedule(config, base, copied):
    return run_fn.warm_start_schedule(config, model, base, copied, warm_start.saved_by(base))

  warm = schedule(config, fine_tuned, copied)
  assert (warm.learning_rate, warm.decay_epochs, warm.warmup_steps) == (2e-3, 5, 0)
  assert schedule(config, pretrained, copied) is None
  assert schedule(config, fine_tuned, {"weights": 0}) is None
  assert schedule(ModelConfig(), fine_tuned, copied) is None
  schedule_rate = ModelConfig.from_dict({"learning_rate": 5e-4, "warm_decay_epochs": 3})
  assert schedule(schedule_rate, fine_tuned, copied).learning_rate == 5e-4


def _forget_saved_by(base_model: str) -> None:
  """Makes ``base_model``'s warm-start folder one written before its index recorded
  the saving model's class (``saved_by``)."""
  index = os.path.join(warm_start.warm_start_dir(base_model), "item_vocab.json")
  with open(index) as f:
    saved = json.load(f)
  del saved["saved_by"]
  with open(index, "w") as f:
    json.dump(saved, f)


def test_adam_state_carries_over_only_when_asked_and_only_from_a_fine_tuned_model(tmp_path,
                                                                                  caplog):
  """ModelConfig.warm_start.carry_optimizer: a nightly retrain goes on from the served
  model's Adam (its step count and moments); from a pre-trained encoder, or when not
  asked, the run starts a fresh Adam and copies the weights all the same."""
  encoder = EncoderConfig(max_seq_len=5, embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1,
                          dropout=0.0)

  def stepped(model):
    return batches.stepped(model, seeds=(0, 1), optimizer="fused_adam")

  def retrieval_model():
    return RetrievalModel(3, encoder, RetrievalConfig(use_item_attributes=False))

  fine_tuned = str(tmp_path / "fine-tuned" / "Format-Serving")
  warm_start.save(stepped(retrieval_model()), ["a", "b", "c"], fine_tuned, optimizer=True)
  pretrained = str(tmp_path / "pretrained" / "Format-Serving")
  warm_start.save(stepped(PretrainingModel(3, encoder, PretrainConfig(attribute_weight=0.0))),
                  ["a", "b", "c"], pretrained, optimizer=True)
  # A folder from before the index recorded its model's class (it has Adam's owner).
  legacy = str(tmp_path / "legacy" / "Format-Serving")
  warm_start.save(stepped(retrieval_model()), ["a", "b", "c"], legacy, optimizer=True)
  _forget_saved_by(legacy)
  carry = ModelConfig.from_dict({"carry_optimizer": True})
  for config, base, carried in ((carry, fine_tuned, True), (ModelConfig(), fine_tuned, False),
                                (carry, pretrained, False), (carry, legacy, True)):
    model = retrieval_model()
    run_fn.compile_model(model, config.schedule)
    with caplog.at_level(logging.WARNING):
      copied, schedule = run_fn.warm_start_run(config, model, ["a", "b", "c"], base)
    assert copied["weights"] > 0 and schedule is None
    assert copied.get("moments_kept", 0) == (len(model.trainable_variables) if carried else 0)
    assert int(model.optimizer.iterations) == (2 if carried else 0)
  # Pre-training's folder is not asked for Adam's state: no warning on every fine-tuning.
  assert "Optimizer state not carried over" not in caplog.text


def test_a_retrain_shrinks_the_served_models_weights_but_never_a_pre_trained_encoders(tmp_path,
                                                                                    caplog):
  """ModelConfig.warm_start.shrink: a nightly retrain starts from shrink * the served
  model's weights + (1 - shrink) * its own fresh initialisation; fine-tuning from a
  pre-trained encoder copies that encoder's weights unchanged whatever the setting."""
  encoder = EncoderConfig(max_seq_len=5, embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1,
                          dropout=0.0)

  def retrieval_model():
    return RetrievalModel(3, encoder, RetrievalConfig(use_item_attributes=False))

  fine_tuned = str(tmp_path / "fine-tuned" / "Format-Serving")
  warm_start.save(batches.stepped(retrieval_model(), seeds=(0, 1)), ["a", "b", "c"], fine_tuned)
  pretrained = str(tmp_path / "pretrained" / "Format-Serving")
  warm_start.save(batches.stepped(PretrainingModel(3, encoder, PretrainConfig(
      attribute_weight=0.0)), seeds=(0, 1)), ["a", "b", "c"], pretrained)
  # A folder from before the index recorded its model's class: not shrunk, said so.
  legacy = str(tmp_path / "legacy" / "Format-Serving")
  warm_start.save(batches.stepped(retrieval_model(), seeds=(0, 1)), ["a", "b", "c"], legacy)
  _forget_saved_by(legacy)
  config = ModelConfig.from_dict({"shrink": 0.25})
  for base, shrink in ((fine_tuned, 0.25), (pretrained, 1.0), (legacy, 1.0)):
    model = retrieval_model()
    run_fn.compile_model(model, config.schedule)
    fresh = [w.numpy() for w in model.encoder.trained_weights]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      copied, _ = run_fn.warm_start_run(config, model, ["a", "b", "c"], base)
    assert copied["weights"] == len(fresh) and copied["shrink"] == shrink
    assert ("weights not shrunk" in caplog.text) == (base == legacy)
    for after, saved, initial in zip(model.encoder.trained_weights,
                                     warm_start.saved_weights(base), fresh):
      np.testing.assert_allclose(after.numpy(), shrink * saved + (1 - shrink) * initial,
                                 rtol=1e-5, atol=1e-6)


def test_a_retrain_from_the_fine_tuned_model_follows_the_warm_start_schedule(
    transform_root, one_device_out, one_device, tmp_path, caplog):
  """run_fn wires the schedule in: its cosine decay over 1 epoch stops a 3-epoch run after
  one, as the earlier run (``one_device``, 2 epochs) did not."""
  assert len(one_device["loss"]) == workers.MODEL_CONFIG["epochs"]
  args = workers.fn_args(str(transform_root), str(tmp_path / "warm"), "default",
                         workers.FINE_TUNING)
  args.base_model = str(one_device_out / "model" / "Format-Serving")
  args.custom_config[MODEL_CONFIG_KEY].update(epochs=3, warm_decay_epochs=1,
                                              carry_optimizer=True)
  with caplog.at_level(logging.WARNING):
    run_fn.run_fn(args)
  assert len(workers.history(tmp_path / "warm")["loss"]) == 1
  # carry_optimizer from a served model saved without Adam's state: a fresh Adam, said so;
  # the new model is saved with its Adam state for the next retrain.
  assert "Optimizer state not carried over: saved by no optimizer" in caplog.text
  saved = warm_start.warm_start_dir(args.serving_model_dir)
  assert os.path.exists(os.path.join(saved, "optimizer.npz"))
