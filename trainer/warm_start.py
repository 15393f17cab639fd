"""Warm start across Trainer runs: known items and attribute values keep their embeddings,
new ones start fresh; optionally Adam's moments and step count carry over too."""

import io
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from trainer import optimizers

WARM_START_DIR = "warm_start"
_WEIGHTS = "weights.npz"
_VOCAB = "item_vocab.json"
_ATTRIBUTES = "attributes.npy"
_OPTIMIZER = "optimizer.npz"
# What a warm start copies: every saved weight ("all"), or only the item (and attribute)
# embeddings, the sequence model (positions, blocks, norms) starting fresh ("items").
KEEP_ALL, KEEP_ITEMS = "all", "items"
KEEP_CHOICES = (KEEP_ALL, KEEP_ITEMS)


def warm_start_dir(serving_model_dir: str) -> str:
  """``<Model artifact>/warm_start`` for the artifact's ``.../Format-Serving`` folder."""
  return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), WARM_START_DIR)


def _encoder(model):
  """The SequenceEncoder of a model (anything with ``.encoder``), or ``model`` itself."""
  return getattr(model, "encoder", model)


def _table_index(encoder) -> Optional[int]:
  """Position of the item id table in ``trained_weights`` (None without one: text items)."""
  if encoder.item_table is None:
    return None
  table = encoder.item_table.embeddings
  return next(i for i, w in enumerate(encoder.trained_weights) if w is table)


def _attribute_table(model) -> Optional[tf.Variable]:
  """The model's attribute embeddings [A, d], row a = attribute vocabulary index a: the
  candidate tower's (RetrievalModel) or the attribute objective's (PretrainingModel)."""
  layer = getattr(model, "attribute_table", None)
  if layer is not None:
    return layer.embeddings
  return getattr(model, "attribute_embeddings", None)


def _write(directory: str, name: str, payload: bytes) -> None:
  with tf.io.gfile.GFile(os.path.join(directory, name), "wb") as f:
    f.write(payload)


def save(model, item_vocab: Sequence[str], serving_model_dir: str,
         attribute_vocab: Optional[Sequence[str]] = None, optimizer: bool = False) -> None:
  """Writes the encoder's weights and item vocabulary for a later warm start.

  The weights are ``encoder.trained_weights``: the frozen text vectors of text item
  representations are left out, the next run has its own for its vocabulary. With
  ``attribute_vocab``, the model's attribute embeddings (if it has them) are saved
  too, so pre-training hands them to fine-tuning and a nightly run keeps them.

  Args:
    model: a SequenceEncoder or a model holding one as ``.encoder``.
    item_vocab: raw item ids in vocabulary-index order.
    serving_model_dir: the Model artifact's serving folder
      (``fn_args.serving_model_dir``); the files go to ``warm_start_dir`` of it.
    attribute_vocab: attribute values in attribute-index order (the tf.Transform
      attribute vocabulary).
    optimizer: also write the model's Adam state (moments of the saved weights and
      step count; twice the weights' size) for ``restore(optimizer=True)``.
  """
  encoder = _encoder(model)
  directory = warm_start_dir(serving_model_dir)
  tf.io.gfile.makedirs(directory)
  buffer = io.BytesIO()
  np.savez(buffer, *[w.numpy() for w in encoder.trained_weights])
  _write(directory, _WEIGHTS, buffer.getvalue())
  index = {"item_vocab": list(item_vocab), "table_index": _table_index(encoder),
           "saved_by": type(model).__name__}
  attributes = _attribute_table(model)
  if attributes is not None and attribute_vocab is not None:
    if len(attribute_vocab) != attributes.shape[0]:
      raise ValueError(f"attribute_vocab has {len(attribute_vocab)} values; the model's "
                       f"attribute table has {attributes.shape[0]} rows")
    buffer = io.BytesIO()
    np.save(buffer, attributes.numpy())
    _write(directory, _ATTRIBUTES, buffer.getvalue())
    index["attribute_vocab"] = list(attribute_vocab)
  moments = _adam_moments(model, encoder.trained_weights) if optimizer else None
  if moments is not None:
    arrays = {"iterations": np.int64(model.optimizer.iterations.numpy())}
    for i, pair in enumerate(moments):
      if pair is not None:
        arrays[f"m_{i}"], arrays[f"v_{i}"] = (slot.numpy() for slot in pair)
    pair = _adam_moments(model, [attributes])[0] if "attribute_vocab" in index else None
    if pair is not None:
      arrays["m_attributes"], arrays["v_attributes"] = (slot.numpy() for slot in pair)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write(directory, _OPTIMIZER, buffer.getvalue())
    index["optimizer_of"] = type(model).__name__
  with tf.io.gfile.GFile(os.path.join(directory, _VOCAB), "w") as f:
    json.dump(index, f)


def _adam_moments(model, weights, build: bool = False
                  ) -> Optional[List[Optional[optimizers.Moments]]]:
  """Adam's (first, second) moment slots of each of ``weights`` (None for a weight it
  has none for), or None when ``model`` has no Adam optimizer or it has taken no step.
  With ``build``, an unbuilt Adam is built first on the model's trainable variables."""
  optimizer = getattr(model, "optimizer", None)
  if not optimizers.is_adam(optimizer):
    return None
  if not optimizers.is_built(optimizer):
    if not build:
      return None
    optimizers.build(optimizer, model.trainable_variables)
  return optimizers.moments(optimizer, weights)


def restore(model, item_vocab: Sequence[str], base_model: str,
            attribute_vocab: Optional[Sequence[str]] = None,
            shrink: float = 1.0, keep: str = KEEP_ALL,
            optimizer: bool = False) -> Dict[str, int]:
  """Copies encoder weights saved by ``save`` into ``model``'s encoder (built for ``item_vocab``).

  ``base_model`` is the serving folder of the Model artifact to start from
  (``fn_args.base_model``). With ``attribute_vocab`` (this run's attribute values
  in index order), attribute embeddings saved with their vocabulary are copied into
  the model's attribute table by value; new values keep their initialisation.
  With ``shrink`` < 1 every copied value becomes ``shrink * saved + (1 - shrink) *
  initial`` (shrink and perturb: part of a fresh initialisation mixed back in).
  With ``keep`` "items" only the item id table (and attribute embeddings) is copied;
  the other encoder weights keep their fresh initialisation.
  With ``optimizer``, ``model``'s Adam (compiled, built here if it has not stepped)
  also takes the saved run's step count and the first and second moments of every
  copied weight (item rows by raw id; new items' rows zero, as a fresh Adam's), so
  training goes on where that run stopped instead of restarting Adam; only from a
  model of the same class (a fine-tuning run's moments are not a pre-training run's).
  The moments are those of the saved run's last step, also when its weights are an
  earlier epoch's (early stopping's best).
  Returns counts: ``weights`` copied, ``items_kept`` (embeddings carried over),
  ``items_new``, ``attributes_kept`` and, with ``optimizer``, ``moments_kept``
  (weights whose moments were copied); ``weights`` is zero when nothing could be
  copied (and then nothing is).
  """
  attributes = _attribute_table(model)
  if not 0 < shrink <= 1:
    raise ValueError(f"shrink must be in (0, 1], got {shrink!r}")
  if keep not in KEEP_CHOICES:
    raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
  if keep == KEEP_ITEMS and _encoder(model).item_table is None:
    raise ValueError("keep='items' needs an item id table; this model represents items "
                     "by text only")
  saved = _index(base_model)
  stats, copied = _restore_encoder(_encoder(model), item_vocab, base_model, saved, shrink,
                                   keep)
  if optimizer:
    stats["moments_kept"] = _restore_moments(model, item_vocab, base_model, saved, copied,
                                             attribute_vocab)
  stats["attributes_kept"] = 0
  if stats["weights"] and attributes is not None and attribute_vocab is not None:
    stats["attributes_kept"] = _restore_attributes(attributes, attribute_vocab, base_model,
                                                   saved, shrink)
  logging.info("Warm start from %s: %s", warm_start_dir(base_model), stats)
  return stats


def _index(base_model: str) -> Dict[str, object]:
  """The index ``save`` wrote for ``base_model``: item vocabulary, table index, the
  saving model's class and, if saved, the attribute vocabulary and optimizer's owner."""
  with tf.io.gfile.GFile(os.path.join(warm_start_dir(base_model), _VOCAB)) as f:
    return json.load(f)


def saved_by(base_model: str) -> Optional[str]:
  """The class of the model ``save`` wrote for ``base_model`` (e.g. ``RetrievalModel``,
  ``PretrainingModel``), or None for a folder written before it was recorded."""
  return _index(base_model).get("saved_by")


def saved_weights(base_model: str) -> List[np.ndarray]:
  """The encoder weights ``save`` wrote for ``base_model``, in ``trained_weights`` order."""
  with tf.io.gfile.GFile(os.path.join(warm_start_dir(base_model), _WEIGHTS), "rb") as f:
    archive = np.load(io.BytesIO(f.read()))
  return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def _restore_encoder(model, item_vocab: Sequence[str], base_model: str, saved: Dict,
                     shrink: float = 1.0, keep: str = KEEP_ALL
                     ) -> Tuple[Dict[str, int], List[int]]:
  """Copies the saved weights (``saved``: their index); the counts and the indices (in
  ``trained_weights``) copied."""
  old = saved_weights(base_model)
  table = _table_index(model)
  weights = model.trained_weights
  nothing = {"weights": 0, "items_kept": 0, "items_new": len(item_vocab)}
  if len(old) != len(weights) or saved["table_index"] != table:
    logging.warning("Warm start skipped: the saved model has %d weights, this one %d "
                    "(architecture changed); training from scratch.", len(old), len(weights))
    return nothing, []
  for i, (w, value) in enumerate(zip(weights, old)):
    if i != table and tuple(w.shape) != value.shape:
      logging.warning("Warm start skipped: weight %s has shape %s, saved %s; training "
                      "from scratch.", w.name, tuple(w.shape), value.shape)
      return nothing, []
  if table is not None:
    old[table] = _remap_table(weights[table].numpy(), old[table], saved["item_vocab"],
                              item_vocab)
  copied = [i for i in range(len(weights)) if keep == KEEP_ALL or i == table]
  for i in copied:
    weights[i].assign(_shrunk(old[i], weights[i].numpy(), shrink))
  kept = len(set(saved["item_vocab"]) & set(item_vocab))
  return {"weights": len(copied), "items_kept": kept,
          "items_new": len(item_vocab) - kept}, copied


def _restore_moments(model, item_vocab: Sequence[str], base_model: str, saved: Dict,
                     copied: Sequence[int],
                     attribute_vocab: Optional[Sequence[str]] = None) -> int:
  """Copies the saved Adam state of the ``copied`` weights (and of the attribute table,
  rows by value, with ``attribute_vocab``) into ``model.optimizer``; the number of
  weights whose moments were copied. ``saved``: the saved model's index."""
  directory = warm_start_dir(base_model)
  if not copied or saved.get("optimizer_of") != type(model).__name__:
    logging.warning("Optimizer state not carried over: %s", "no weight was copied" if not copied
                    else f"saved by {saved.get('optimizer_of') or 'no optimizer'}, restoring "
                         f"into {type(model).__name__}")
    return 0
  slots = _adam_moments(model, _encoder(model).trained_weights, build=True)
  if slots is None:
    found = type(getattr(model, "optimizer", None)).__name__
    raise ValueError(f"optimizer state needs a model compiled with Adam; "
                     f"{type(model).__name__} has {found}")
  with tf.io.gfile.GFile(os.path.join(directory, _OPTIMIZER), "rb") as f:
    archive = dict(np.load(io.BytesIO(f.read())))
  table = _table_index(_encoder(model))
  count = 0
  for i in copied:
    if slots[i] is None or f"m_{i}" not in archive:
      continue
    for slot, name in zip(slots[i], ("m", "v")):
      value = archive[f"{name}_{i}"]
      if i == table:
        value = _remap_table(np.zeros(slot.shape, value.dtype), value, saved["item_vocab"],
                             item_vocab)
      slot.assign(value)
    count += 1
  attributes = _attribute_table(model)
  pairs = (_attribute_rows(attribute_vocab, saved)
           if attributes is not None and attribute_vocab is not None
           and "m_attributes" in archive else None)
  pair = _adam_moments(model, [attributes])[0] if pairs is not None else None
  if pair is not None and archive["m_attributes"].shape[1:] == tuple(pair[0].shape[1:]):
    for slot, name in zip(pair, ("m", "v")):
      value = np.zeros(slot.shape, np.float32)
      value[pairs[0]] = archive[f"{name}_attributes"][pairs[1]]
      slot.assign(value)
    count += 1
  model.optimizer.iterations.assign(int(archive["iterations"]))
  return count


def _shrunk(saved: np.ndarray, initial: np.ndarray, shrink: float) -> np.ndarray:
  """``saved`` with ``1 - shrink`` of ``initial`` mixed in (``saved`` itself at 1)."""
  return saved if shrink == 1 else shrink * saved + (1 - shrink) * initial


def _attribute_rows(vocab: Sequence[str], saved: Dict
                    ) -> Optional[Tuple[List[int], List[int]]]:
  """(rows of ``vocab``, their saved rows) of the attribute values both have, or None
  when nothing was saved with an attribute vocabulary (``saved``: the saved index)."""
  old_vocab = saved.get("attribute_vocab")
  if old_vocab is None:
    return None
  old_rows = {value: i for i, value in enumerate(old_vocab)}
  pairs = [(j, old_rows[value]) for j, value in enumerate(vocab) if value in old_rows]
  return tuple(map(list, zip(*pairs))) if pairs else ([], [])


def _restore_attributes(table: tf.Variable, vocab: Sequence[str], base_model: str,
                        saved: Dict, shrink: float = 1.0) -> int:
  """Copies saved attribute rows into ``table`` by value; the number of values kept."""
  pairs = _attribute_rows(vocab, saved)
  if pairs is None:
    return 0
  with tf.io.gfile.GFile(os.path.join(warm_start_dir(base_model), _ATTRIBUTES), "rb") as f:
    old = np.load(io.BytesIO(f.read()))
  fresh = table.numpy()
  if old.shape[1] != fresh.shape[1]:
    logging.warning("Attribute embeddings not carried over: width %d, saved %d.",
                    fresh.shape[1], old.shape[1])
    return 0
  new_rows, saved_rows = pairs
  if new_rows:
    fresh[new_rows] = _shrunk(old[saved_rows], fresh[new_rows], shrink)
    table.assign(fresh)
  return len(new_rows)


def _remap_table(fresh: np.ndarray, old: np.ndarray, old_vocab: List[str],
                 new_vocab: Sequence[str]) -> np.ndarray:
  """Item table rows: [pad, item 0..V-1, extra rows]; items matched by raw id."""
  if fresh.shape[1] != old.shape[1]:
    raise ValueError(f"embedding width changed: {old.shape[1]} -> {fresh.shape[1]}")
  table = fresh.copy()
  old_rows = {item: i + 1 for i, item in enumerate(old_vocab)}
  table[0] = old[0]
  for j, item in enumerate(new_vocab):
    row = old_rows.get(item)
    if row is not None:
      table[j + 1] = old[row]
  extra_new, extra_old = fresh.shape[0] - len(new_vocab) - 1, old.shape[0] - len(old_vocab) - 1
  for k in range(min(extra_new, extra_old)):  # e.g. the [MASK] token row
    table[len(new_vocab) + 1 + k] = old[len(old_vocab) + 1 + k]
  return table


def schedule_of(config, learning_rate: float) -> Optional["WarmSchedule"]:
  """The ``WarmSchedule`` of ``config`` (a ``trainer.config.WarmStartConfig``) over a
  schedule of ``learning_rate``, or None when it keeps that constant rate."""
  if not config.is_set:
    return None
  return WarmSchedule(config.rate(learning_rate), config.warm_warmup_steps,
                      config.warm_decay_epochs)


class WarmSchedule(tf.keras.callbacks.Callback):
  """The learning rate of a warm-started run: a linear warm-up over the first
  ``warmup_steps`` batches (from ``learning_rate / warmup_steps``), then, with
  ``decay_epochs``, a cosine decay over that many epochs (each epoch at the value of its
  midpoint) after which training stops; else the constant ``learning_rate``.

  A fresh Adam's first steps move every weight by about the learning rate whatever its
  gradient; the warm-up keeps them small while the moment estimates fill.
  """

  def __init__(self, learning_rate: float, warmup_steps: int = 0, decay_epochs: int = 0):
    super().__init__()
    if learning_rate <= 0 or warmup_steps < 0 or decay_epochs < 0:
      raise ValueError(f"WarmSchedule needs learning_rate > 0, warmup_steps >= 0, "
                       f"decay_epochs >= 0; got {learning_rate}, {warmup_steps}, "
                       f"{decay_epochs}")
    self.learning_rate = learning_rate
    self.warmup_steps = warmup_steps
    self.decay_epochs = decay_epochs
    self._step = 0
    self._epoch = 0

  def rate(self, step: int, epoch: int) -> float:
    """The learning rate of batch ``step`` (0-based, counted over the run) in ``epoch``."""
    rate = self.learning_rate
    if step < self.warmup_steps:
      rate *= (step + 1) / self.warmup_steps
    if self.decay_epochs:
      rate *= 0.5 * (1 + math.cos(math.pi * min(epoch + 0.5, self.decay_epochs)
                                  / self.decay_epochs))
    return rate

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._set(self.rate(self._step, epoch))

  def on_train_batch_begin(self, batch, logs=None):
    if self._step < self.warmup_steps:
      self._set(self.rate(self._step, self._epoch))
    self._step += 1

  def on_epoch_end(self, epoch, logs=None):
    if self.decay_epochs and epoch + 1 >= self.decay_epochs:
      self.model.stop_training = True

  def _set(self, rate: float) -> None:
    self.model.optimizer.learning_rate.assign(rate)
