"""TFX Trainer entry point for retrieval fine-tuning: wires data, model and export."""

import contextlib
import json
import logging
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import cpu_features
from trainer import export
from trainer import features
from trainer import inputs
from trainer import optimizers
from trainer import item_vectors as item_vectors_lib
from trainer import ranking_validation
from trainer import retrieval
from trainer import tasks
from trainer import warm_start
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import EncoderConfig
from trainer.config import HISTORY_FILE
from trainer.config import RETRIEVAL_CONFIG_KEY
from trainer.config import ModelConfig
from trainer.pretraining import item_attributes as item_attributes_lib
from trainer.pretraining.clustering import ClusteringCallback
from trainer.training_schedule import TrainingSchedule


def model_config_from(custom_config) -> ModelConfig:
  """The ModelConfig a pipeline passed in ``custom_config`` (defaults if none)."""
  custom_config = custom_config or {}
  return ModelConfig.from_dict(custom_config.get(MODEL_CONFIG_KEY, {}))


STRATEGIES = {
    "default": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multi_worker_mirrored": tf.distribute.MultiWorkerMirroredStrategy,
}


def distribution_strategy(name: str) -> tf.distribute.Strategy:
  """The tf.distribute strategy ``ModelConfig.distribution_strategy`` names."""
  return STRATEGIES[name]()


def compile_model(model: tf.keras.Model, schedule: TrainingSchedule) -> None:
  """Compiles ``model`` for training with the schedule's Adam at its learning rate, its
  ``jit_compile`` and its ``mixed_precision`` of the catalogue-scoring matmuls."""
  precision = cpu_features.resolve_precision(schedule.mixed_precision)
  logging.info("Training with %s catalogue-scoring matmuls (mixed_precision=%r), "
               "jit_compile=%s", precision, schedule.mixed_precision, schedule.jit_compile)
  tasks.set_scoring_precision(model, precision)
  model.compile(optimizer=optimizers.make(schedule.optimizer, schedule.learning_rate),
                jit_compile=schedule.jit_compile)
  # Slots now, in the caller's strategy scope: the legacy (fused) Adam would create them
  # inside the first replicated train step, which tf.distribute cannot initialise there.
  optimizers.build(model.optimizer, model.trainable_variables)


def _read_vocab(tf_transform_output, name: str) -> List[str]:
  """The tf.Transform vocabulary ``name`` as strings, in index order."""
  return [token.decode() if isinstance(token, bytes) else token
          for token in tf_transform_output.vocabulary_by_name(name)]


def read_item_vocab(tf_transform_output) -> List[str]:
  """Raw item ids in vocabulary-index order."""
  return _read_vocab(tf_transform_output, features.ITEM_VOCAB)


def read_attribute_vocab(tf_transform_output) -> List[str]:
  """Attribute values in attribute-index order (empty when no item has one)."""
  return _read_vocab(tf_transform_output, features.ATTRIBUTE_VOCAB)


def serving_attributes(tf_transform_output, train_files) -> export.ItemAttributes:
  """The catalogue's attribute values for the served model's rules (``recommend``).

  Read from the transformed items split next to ``train_files`` and the
  tf.Transform attribute vocabulary; none when no item has an attribute.
  """
  num_items = tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB)
  values = read_attribute_vocab(tf_transform_output)
  if not values:
    return export.ItemAttributes.empty(num_items)
  table = item_attributes_lib.read_item_attributes(
      item_attributes_lib.items_split_pattern(train_files), num_items, len(values))
  return export.ItemAttributes(values, table.attribute_ids.to_list())


def item_vectors_from(custom_config, config: EncoderConfig,
                      item_vocab: Sequence[str]) -> Optional[np.ndarray]:
  """float32 [V, t] text vectors of the vocabulary's items, for text item representations.

  Read from the file ``custom_config["item_vectors"]`` names (``python -m
  pipeline.embed_items`` writes one), matched by raw item id. With "id+text" an item
  without a vector gets zeros (its id embedding still tells it apart); with "text"
  that is an error. None when ``config`` represents items by id alone.
  """
  path = (custom_config or {}).get(ITEM_VECTORS_KEY)
  if not config.uses_item_text:
    if path:
      logging.info("Item vectors %s not used: item_representation is %r", path,
                   config.item_representation)
    return None
  if not path:
    raise ValueError(f"EncoderConfig.item_representation={config.item_representation!r} needs "
                     f"item vectors: custom_config[{ITEM_VECTORS_KEY!r}] (--item-vectors PATH, "
                     "made by python -m pipeline.embed_items)")
  vectors, missing = item_vectors_lib.align_to_vocabulary(
      item_vectors_lib.read_vectors(path), item_vocab)
  if missing and not config.uses_item_ids:
    raise ValueError(f"item vectors {path} have no vector for {len(missing)} of "
                     f"{len(item_vocab)} catalogue items (e.g. item_id {missing[0]!r}); "
                     "item_representation 'text' needs one for every item: embed the "
                     "item table again (python -m pipeline.embed_items) or use 'id+text'")
  logging.info("Item vectors %s: %d-d for %d of %d catalogue items (%d without one: zeros)",
               path, vectors.shape[1], len(item_vocab) - len(missing), len(item_vocab),
               len(missing))
  return vectors


def retrieval_config_from(custom_config) -> retrieval.RetrievalConfig:
  """The RetrievalConfig a pipeline passed in ``custom_config`` (defaults if none)."""
  custom_config = custom_config or {}
  return retrieval.RetrievalConfig.from_dict(
      custom_config.get(RETRIEVAL_CONFIG_KEY, {}))


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """``dataset`` split across workers batch by batch, as if one device took each batch.

  Every worker reads every file and keeps its replicas' share of each global
  batch. Under the default policy (AUTO) this input pipeline is not sharded at
  all: every worker would train on every row, each global step on duplicates.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this worker writes the run's outputs: all but non-chief multi-worker workers."""
  return strategy.extended.should_checkpoint


@contextlib.contextmanager
def output_dir(directory: str, chief: bool):
  """``directory`` on the chief; elsewhere a scratch stand-in, removed afterwards.

  Every worker of a multi-worker run must save (saving may read variables with
  collective ops), but only the chief's copy is the Trainer's output.
  """
  if chief:
    yield directory
    return
  with tempfile.TemporaryDirectory(prefix="non-chief-") as scratch:
    yield os.path.join(scratch, os.path.basename(directory.rstrip("/")))


def warm_start_run(config: ModelConfig, model, item_vocab: Sequence[str], base_model: str,
                   attribute_vocab: Optional[Sequence[str]] = None,
                   keep: str = warm_start.KEEP_ALL
                   ) -> Tuple[Dict[str, int], Optional[warm_start.WarmSchedule]]:
  """Starts ``model`` (compiled) from ``base_model`` as the Trainer does: its weights
  (``warm_start.restore`` with ``keep``, shrunk by ``config.warm_start.shrink`` when
  ``base_model`` was saved by a model of ``model``'s class: a nightly retrain) and, if
  ``config.warm_start.carry_optimizer``, Adam's state, which ``restore`` takes only from
  a model of ``model``'s class (not asked of a pre-trained encoder, whose folder records
  its class). Returns restore's counts with the ``shrink`` applied, and
  ``warm_start_schedule``'s callback (or None)."""
  source = warm_start.saved_by(base_model)
  carry = config.warm_start.carry_optimizer and source in (None, type(model).__name__)
  shrink = config.warm_start.shrink if source == type(model).__name__ else 1.0
  if shrink != config.warm_start.shrink and source is None:   # (a pre-trained one: by design)
    logging.warning("Warm start: weights not shrunk (warm_start.shrink %g): %s was saved by "
                    "a version that did not record its model", config.warm_start.shrink,
                    base_model)
  copied = warm_start.restore(model, item_vocab, base_model, attribute_vocab, shrink, keep,
                              optimizer=carry)
  copied["shrink"] = shrink
  return copied, warm_start_schedule(config, model, base_model, copied, source)


def warm_start_schedule(config: ModelConfig, model, base_model: str, copied: Dict[str, int],
                        source: Optional[str]) -> Optional[warm_start.WarmSchedule]:
  """``config.warm_start``'s learning-rate schedule when this run goes on from an earlier
  fine-tuned model (a nightly retrain: ``base_model`` saved by a model of ``model``'s
  class and its weights ``copied``, ``warm_start.restore``'s counts), else None: from a
  pre-trained encoder the run trains on the schedule's constant rate. ``source``:
  ``warm_start.saved_by(base_model)``."""
  if not config.warm_start.is_set or not copied["weights"]:
    return None
  if source != type(model).__name__:
    logging.info("Warm-start schedule not applied: %s was saved by %s, not a %s", base_model,
                 source or "a version that did not record its model", type(model).__name__)
    return None
  warm = warm_start.schedule_of(config.warm_start, config.schedule.learning_rate)
  logging.info("Warm-start schedule from the fine-tuned model %s: %s", base_model,
               config.warm_start)
  return warm


def run_fn(fn_args):
  """Fine-tunes the retrieval model on the train split, validates on eval, exports."""
  config = model_config_from(fn_args.custom_config)
  retrieval_config = retrieval_config_from(fn_args.custom_config)
  # Before any other TensorFlow work: a multi-worker strategy configures the runtime.
  strategy = distribution_strategy(config.distribution_strategy)
  schedule = config.schedule
  tf.keras.utils.set_random_seed(schedule.seed)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  num_items = tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB)
  spec = tf_transform_output.transformed_feature_spec()

  def dataset(files, training):
    return shard_by_data(inputs.make_dataset(
        files, spec, oov_index=num_items, max_seq_len=config.encoder.max_seq_len,
        batch_size=schedule.batch_size, training=training, shuffle_seed=schedule.seed,
        prefixes=training and retrieval_config.trains_on_prefixes))

  train_ds, eval_ds = dataset(fn_args.train_files, True), dataset(fn_args.eval_files, False)
  item_vocab = read_item_vocab(tf_transform_output)
  attribute_vocab = read_attribute_vocab(tf_transform_output)
  with strategy.scope():
    model = retrieval.build_for_run(
        tf_transform_output, fn_args.train_files, train_ds, config.encoder, retrieval_config,
        item_vectors=item_vectors_from(fn_args.custom_config, config.encoder, item_vocab))
    compile_model(model, schedule)
    warm_schedule = None
    if fn_args.base_model:
      _, warm_schedule = warm_start_run(config, model, item_vocab, fn_args.base_model,
                                        attribute_vocab)
  chief = is_chief(strategy)
  with output_dir(fn_args.model_run_dir, chief) as model_run_dir, \
       output_dir(fn_args.serving_model_dir, chief) as serving_model_dir:
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=model_run_dir),
                 *ClusteringCallback.for_model(model, train_ds, model.auxiliary_config),
                 ranking_validation.RankingValidation(eval_ds, k=10),
                 *([warm_schedule] if warm_schedule else [])]
    if config.early_stopping_patience:
      callbacks.append(tf.keras.callbacks.EarlyStopping(
          monitor=ranking_validation.ndcg_name(10), mode="max",
          patience=config.early_stopping_patience, restore_best_weights=True))
    logging.info("Training on %d catalogue items, %d replica(s), with %s", num_items,
                 strategy.num_replicas_in_sync, config)
    history = model.fit(train_ds, validation_data=eval_ds, epochs=schedule.epochs,
                        callbacks=callbacks, verbose=2)
    export.export_serving_model(model, tf_transform_output, config.encoder.max_seq_len,
                                serving_model_dir,
                                serving_attributes(tf_transform_output, fn_args.train_files))
    warm_start.save(model, item_vocab, serving_model_dir, attribute_vocab,
                    optimizer=config.warm_start.carry_optimizer)
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as f:
      json.dump({k: [float(x) for x in v] for k, v in history.history.items()}, f)
