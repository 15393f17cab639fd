"""TFX Trainer entry point for self-supervised pre-training of the sequence encoder.

Its Model artifact holds the encoder in ``trainer.warm_start``'s format; it serves nothing.
"""

import json
import logging
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer import features
from trainer import inputs
from trainer import retrieval
from trainer import warm_start
from trainer.config import EncoderConfig
from trainer.config import HISTORY_FILE
from trainer.config import ITEMS_FILES_KEY
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import PRETRAIN_CONFIG_KEY
from trainer.pretraining import item_attributes as item_attributes_lib
from trainer.pretraining.clustering import ClusteringCallback
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.pretraining.model import PretrainingModel
from trainer.run_fn import compile_model
from trainer.run_fn import distribution_strategy
from trainer.run_fn import is_chief
from trainer.run_fn import item_vectors_from
from trainer.run_fn import model_config_from
from trainer.run_fn import output_dir
from trainer.run_fn import read_attribute_vocab
from trainer.run_fn import read_item_vocab
from trainer.run_fn import retrieval_config_from
from trainer.run_fn import shard_by_data

Files = Union[str, Sequence[str]]


def pretrain_config_from(custom_config) -> PretrainConfig:
  """The PretrainConfig a pipeline passed in ``custom_config`` (defaults if none)."""
  custom_config = custom_config or {}
  return PretrainConfig.from_dict(custom_config.get(PRETRAIN_CONFIG_KEY, {}))


def pretrain(train_files: Files, eval_files: Optional[Files], transformed_feature_spec,
             num_items: int, encoder_config: EncoderConfig, pretrain_config: PretrainConfig,
             item_attributes: Optional[ItemAttributeTable] = None,
             log_dir: Optional[str] = None,
             warm_start_from: Optional[Tuple[Sequence[str], str]] = None,
             attribute_vocab: Optional[Sequence[str]] = None,
             item_vectors: Optional[np.ndarray] = None,
             strategy: Optional[tf.distribute.Strategy] = None,
             exclude_untrained_items: bool = True
             ) -> Tuple[PretrainingModel, dict]:
  """Pre-trains an encoder on transformed sequence examples.

  Args:
    train_files, eval_files: globs of the transformed train / eval splits
      (eval may be None or empty: no validation).
    transformed_feature_spec: ``TFTransformOutput.transformed_feature_spec()``.
    num_items: V.
    encoder_config: encoder shape and dropout.
    pretrain_config: objectives and schedule.
    item_attributes: required iff ``attribute_weight > 0``.
    log_dir: TensorBoard logs, if given.
    warm_start_from: ``(item_vocab, base Model's serving folder)``: continue from
      that Model's encoder (``trainer.warm_start``; items matched by raw id), e.g.
      the served model's, so a nightly run refreshes rather than restarts it.
    attribute_vocab: attribute values in index order; with it the warm start also
      carries the attribute embeddings over by value.
    item_vectors: float [V, t] item text vectors (text item representations).
    strategy: the tf.distribute strategy to train under (default: the current one);
      each worker keeps its replicas' share of every global batch (``shard_by_data``).
    exclude_untrained_items: with a text item representation, items no training
      batch shows take no part in the objectives' catalogue scoring
      (``RetrievalConfig.exclude_untrained_items``, ``trainer.tasks.excluded_items``).

  Returns:
    (the trained PretrainingModel, its fit history as {metric: [per-epoch floats]}).
  """
  schedule = pretrain_config.schedule
  strategy = strategy or tf.distribute.get_strategy()
  tf.keras.utils.set_random_seed(schedule.seed)

  def dataset(files, training):
    return shard_by_data(inputs.make_dataset(
        files, transformed_feature_spec, oov_index=num_items,
        max_seq_len=encoder_config.max_seq_len, batch_size=schedule.batch_size,
        training=training, shuffle_seed=schedule.seed))

  train_ds = dataset(train_files, True)
  eval_ds = dataset(eval_files, False) if eval_files else None
  untrained = retrieval.untrained_to_exclude(lambda: train_ds, num_items, encoder_config,
                                             exclude_untrained_items)
  with strategy.scope():
    model = PretrainingModel(num_items, encoder_config, pretrain_config, item_attributes,
                             item_vectors, untrained, exclude_untrained_items)
    compile_model(model, schedule)
    if warm_start_from is not None:
      warm_start.restore(model, *warm_start_from, attribute_vocab)
  callbacks = []
  if log_dir:
    callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir))
  callbacks += ClusteringCallback.for_model(model, train_ds, pretrain_config)
  logging.info("Pre-training on %d catalogue items, %d replica(s), with %s and %s", num_items,
               strategy.num_replicas_in_sync, encoder_config, pretrain_config)
  history = model.fit(train_ds, validation_data=eval_ds, epochs=schedule.epochs,
                      callbacks=callbacks, verbose=2)
  return model, {k: [float(x) for x in v] for k, v in history.history.items()}


def run_fn(fn_args):
  """Pre-trains on the train split and saves the encoder beside ``fn_args.serving_model_dir``.

  Under ``ModelConfig.distribution_strategy`` as the fine-tuning ``run_fn``: the
  strategy first, each worker's share of the data, outputs from the chief only.
  """
  custom_config = fn_args.custom_config or {}
  model_config = model_config_from(custom_config)
  pretrain_config = pretrain_config_from(custom_config)
  # Before any other TensorFlow work: a multi-worker strategy configures the runtime.
  strategy = distribution_strategy(model_config.distribution_strategy)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  num_items = tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB)
  attributes = None
  if pretrain_config.attribute_weight > 0:
    num_attributes = tf_transform_output.vocabulary_size_by_name(features.ATTRIBUTE_VOCAB)
    pattern = (custom_config.get(ITEMS_FILES_KEY)
               or item_attributes_lib.items_split_pattern(fn_args.train_files))
    attributes = item_attributes_lib.read_item_attributes(pattern, num_items, num_attributes)
    logging.info("Item attributes: %d of %d items have some of %d attributes",
                 attributes.num_items_with_attributes, num_items, num_attributes)
  item_vocab = read_item_vocab(tf_transform_output)
  attribute_vocab = read_attribute_vocab(tf_transform_output)
  base_model = getattr(fn_args, "base_model", None)
  chief = is_chief(strategy)
  with output_dir(fn_args.model_run_dir, chief) as model_run_dir, \
       output_dir(fn_args.serving_model_dir, chief) as serving_model_dir:
    model, history = pretrain(
        fn_args.train_files, fn_args.eval_files, tf_transform_output.transformed_feature_spec(),
        num_items, model_config.encoder, pretrain_config, attributes, log_dir=model_run_dir,
        warm_start_from=(item_vocab, base_model) if base_model else None,
        attribute_vocab=attribute_vocab,
        item_vectors=item_vectors_from(custom_config, model_config.encoder, item_vocab),
        strategy=strategy,
        exclude_untrained_items=retrieval_config_from(custom_config).exclude_untrained_items)
    warm_start.save(model, item_vocab, serving_model_dir, attribute_vocab)
    tf.io.gfile.makedirs(serving_model_dir)   # TFX requires it; nothing to serve
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as f:
      json.dump(history, f)


__all__ = ["MODEL_CONFIG_KEY", "PRETRAIN_CONFIG_KEY", "ITEMS_FILES_KEY", "pretrain",
           "pretrain_config_from", "run_fn"]
