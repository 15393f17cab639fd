"""Saving a pre-trained encoder and restoring it into a fine-tuning model.

Layout written under a Model artifact's serving folder (``fn_args.serving_model_dir``
of the pre-training Trainer, which a fine-tuning Trainer receives as
``fn_args.base_model``)::

  <dir>/saved_model.pb, variables/      SavedModel: signatures "encode" and
                                        "item_embeddings" (TF-loadable, for inspection)
  <dir>/pretrained_encoder/metadata.json  num_items, EncoderConfig, PretrainConfig,
                                        item vocabulary fingerprint, checkpoint names
  <dir>/pretrained_encoder/encoder*     tf.train.Checkpoint(encoder=SequenceEncoder)
  <dir>/pretrained_encoder/attributes*  tf.train.Checkpoint(attribute_embeddings=[A, d])
                                        (only when the attribute objective ran)
"""

import hashlib
import json
import os
from typing import Optional

import tensorflow as tf

from trainer.encoder import SequenceEncoder
from trainer.pretraining.config import PretrainConfig

SUBDIR = "pretrained_encoder"
METADATA_FILE = "metadata.json"
ENCODER_PREFIX = "encoder"
ATTRIBUTES_PREFIX = "attributes"
FORMAT_VERSION = 1
ENCODE_SIGNATURE = "encode"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"
# EncoderConfig fields that decide the encoder's variables; the others (dropout,
# attention, filter) and the schedules may differ between pre-training and fine-tuning.
SHAPE_FIELDS = ("max_seq_len", "embedding_dim", "num_blocks", "num_heads", "ff_dim")


def file_fingerprint(path: str) -> str:
  """sha256 hex digest of a file (used for the item vocabulary)."""
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    while True:
      chunk = f.read(1 << 20)
      if not chunk:
        break
      digest.update(chunk)
  return digest.hexdigest()


class _EncoderModule(tf.Module):
  """SavedModel wrapper: left-padded model ids in, representations out.

  It tracks the encoder's variables, not the Keras layer itself, so saving does
  not run Keras' layer serialization (which re-traces every sub-layer).
  """

  def __init__(self, encoder: SequenceEncoder):
    super().__init__()
    self.encoder_variables = list(encoder.variables)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="item_ids")],
                 autograph=False)
    def encode(item_ids):
      """item_ids int32 [B, L] model ids (0 pad, vocab index + 1) -> query [B, d], hidden [B, L, d]."""
      # The query tower's reading (EncoderConfig.attention) of the history.
      hidden = encoder(item_ids, training=False, causal=encoder.config.causal_query)
      return {"query_embedding": hidden[:, -1, :], "hidden": hidden}

    @tf.function(input_signature=[], autograph=False)
    def item_embeddings():
      """float [V, d], row j = vocabulary index j."""
      return {"item_embeddings": encoder.item_embeddings}

    self.encode = encode
    self.item_embeddings = item_embeddings


def save_pretrained_encoder(encoder: SequenceEncoder, export_dir: str,
                            pretrain_config: Optional[PretrainConfig] = None,
                            item_vocab_file: Optional[str] = None,
                            attribute_embeddings: Optional[tf.Variable] = None,
                            history: Optional[dict] = None) -> str:
  """Writes the layout above into ``export_dir``; returns the metadata path.

  Args:
    encoder: a built SequenceEncoder.
    export_dir: the pre-training Trainer's ``fn_args.serving_model_dir``.
    pretrain_config: recorded in the metadata.
    item_vocab_file: the Transform's item vocabulary; its fingerprint lets
      ``load_pretrained_encoder`` refuse a model trained on another item order.
    attribute_embeddings: the attribute table [A, d] (attribute objective), if any.
    history: per-epoch training logs, recorded in the metadata.
  """
  if not encoder.built:
    raise ValueError("save_pretrained_encoder needs a built encoder (call it once first)")
  tf.io.gfile.makedirs(export_dir)
  module = _EncoderModule(encoder)
  tf.saved_model.save(module, export_dir, signatures={
      ENCODE_SIGNATURE: module.encode.get_concrete_function(),
      ITEM_EMBEDDINGS_SIGNATURE: module.item_embeddings.get_concrete_function(),
  })
  subdir = os.path.join(export_dir, SUBDIR)
  tf.io.gfile.makedirs(subdir)
  tf.train.Checkpoint(encoder=encoder).write(os.path.join(subdir, ENCODER_PREFIX))
  metadata = {
      "format_version": FORMAT_VERSION,
      "num_items": int(encoder.num_items),
      "model_config": json.loads(encoder.config.to_json()),   # the EncoderConfig
      "pretrain_config": pretrain_config.to_dict() if pretrain_config else None,
      "item_vocab_sha256": file_fingerprint(item_vocab_file) if item_vocab_file else None,
      "encoder_checkpoint": ENCODER_PREFIX,
      "attributes_checkpoint": None,
      "num_attributes": None,
      "history": history,
  }
  if attribute_embeddings is not None:
    table = tf.Variable(tf.convert_to_tensor(attribute_embeddings), trainable=False)
    tf.train.Checkpoint(attribute_embeddings=table).write(os.path.join(subdir, ATTRIBUTES_PREFIX))
    metadata["attributes_checkpoint"] = ATTRIBUTES_PREFIX
    metadata["num_attributes"] = int(table.shape[0])
  path = os.path.join(subdir, METADATA_FILE)
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(metadata, f, indent=2, sort_keys=True)
  return path


def read_metadata(base_model_dir: str) -> dict:
  """The metadata.json of a pre-trained encoder folder (see module docstring)."""
  path = os.path.join(base_model_dir, SUBDIR, METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{base_model_dir} holds no pre-trained encoder: {path} is missing "
                     f"(expected the serving folder of a pre-training Trainer's Model)")
  with tf.io.gfile.GFile(path) as f:
    metadata = json.load(f)
  if metadata.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{path}: format_version {metadata.get('format_version')!r}, "
                     f"this code reads {FORMAT_VERSION}")
  return metadata


def load_pretrained_encoder(base_model_dir: str, encoder: SequenceEncoder,
                            item_vocab_file: Optional[str] = None) -> dict:
  """Restores pre-trained weights into a freshly built encoder of the same shape.

  Args:
    base_model_dir: folder written by ``save_pretrained_encoder`` (a fine-tuning
      Trainer's ``fn_args.base_model``).
    encoder: the fine-tuning model's SequenceEncoder; built here if it is not.
    item_vocab_file: the fine-tuning run's item vocabulary; if given and the
      metadata has a fingerprint, they must match (same item index order).

  Returns:
    The metadata dict.

  Raises:
    ValueError: no pre-trained encoder there; num_items, an encoder shape field
      of EncoderConfig or the item vocabulary differ; the checkpoint does not
      cover every encoder variable.
  """
  metadata = read_metadata(base_model_dir)
  path = os.path.join(base_model_dir, SUBDIR, METADATA_FILE)
  if metadata["num_items"] != encoder.num_items:
    raise ValueError(f"{path}: pre-trained on num_items={metadata['num_items']}, the encoder "
                     f"to warm-start has num_items={encoder.num_items}")
  # Only the shape fields are compared (read from the JSON, so metadata with other
  # fields, e.g. the flat ModelConfig older runs wrote, still loads).
  saved = metadata["model_config"]
  missing = [f for f in SHAPE_FIELDS if f not in saved]
  if missing:
    raise ValueError(f"{path}: model_config lacks {missing}")
  mismatched = {f: (saved[f], getattr(encoder.config, f)) for f in SHAPE_FIELDS
                if saved[f] != getattr(encoder.config, f)}
  if mismatched:
    raise ValueError(f"{path}: EncoderConfig differs from the encoder to warm-start in "
                     f"{ {k: f'pre-trained {a}, now {b}' for k, (a, b) in mismatched.items()} }")
  expected = metadata.get("item_vocab_sha256")
  if item_vocab_file and expected and file_fingerprint(item_vocab_file) != expected:
    raise ValueError(f"{path}: the item vocabulary {item_vocab_file} differs from the one "
                     f"the encoder was pre-trained with (item indices would not match)")
  if not encoder.built:
    encoder(tf.zeros([1, encoder.config.max_seq_len], tf.int32))
  status = tf.train.Checkpoint(encoder=encoder).read(
      os.path.join(base_model_dir, SUBDIR, metadata["encoder_checkpoint"]))
  try:
    status.assert_consumed()
  except AssertionError as e:
    raise ValueError(f"{base_model_dir}: the pre-trained checkpoint does not match the "
                     f"encoder's variables: {e}") from e
  return metadata


def load_pretrained_attribute_embeddings(base_model_dir: str, table: tf.Variable) -> None:
  """Restores the pre-trained attribute table into ``table`` (float [A, d]).

  Raises:
    ValueError: the pre-training run had no attribute objective, or A / d differ.
  """
  metadata = read_metadata(base_model_dir)
  if not metadata.get("attributes_checkpoint"):
    raise ValueError(f"{base_model_dir}: the pre-training run saved no attribute embeddings "
                     f"(attribute_weight was 0)")
  prefix = os.path.join(base_model_dir, SUBDIR, metadata["attributes_checkpoint"])
  saved_shape = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  key = "attribute_embeddings/.ATTRIBUTES/VARIABLE_VALUE"
  if key not in saved_shape or list(saved_shape[key]) != list(table.shape):
    raise ValueError(f"{prefix}: saved attribute table has shape {saved_shape.get(key)}, "
                     f"the table to restore has {list(table.shape)}")
  tf.train.Checkpoint(attribute_embeddings=table).read(prefix).assert_consumed()
