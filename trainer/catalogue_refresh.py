"""A served model with an extended catalogue: new items through its trained text adaptor.

The query tower is the served one, unchanged; docs/serving.md, "Refreshing the catalogue".
"""

import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from serving import contract
from trainer import export
from trainer import features
from trainer import text_match
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.text_adaptor import MoEAdaptor

VOCAB_ASSET = "catalogue_vocab"   # the refreshed vocabulary's file name among the assets
# A served item counts as changed when its text vector moved by more than this (any entry).
CHANGE_TOLERANCE = 1e-4


class RefreshedCandidates(tf.Module):
  """The trained model's query tower (``base``, as loaded) over a new candidate matrix.

  Histories reach ``base`` as raw ids, so it maps them with its own vocabulary: items
  added by a refresh are unknown to it and left out of the query.

  Attributes:
    base: the trained ``RecommenderModule`` SavedModel, as ``tf.saved_model.load`` gives it.
    item_embeddings: float32 [V, d] variable, row j the item of vocabulary index j.
    text_vectors: float32 [V, t] variable, the text vector each row was computed from
      (None for id-only models).
    in_catalogue: bool [V] variable, False for items no longer in the item table.
  """

  def __init__(self, base, vocabulary: export.ItemVocabulary, item_embeddings: np.ndarray,
               in_catalogue: np.ndarray, text_vectors: Optional[np.ndarray] = None):
    super().__init__()
    self.base = base
    self.vocabulary = vocabulary
    self.item_embeddings = tf.Variable(np.asarray(item_embeddings, np.float32),
                                       trainable=False, name="item_embeddings")
    self.in_catalogue = tf.Variable(np.asarray(in_catalogue, bool), trainable=False,
                                    name="in_catalogue")
    self.text_vectors = None
    if text_vectors is not None:
      self.text_vectors = tf.Variable(np.asarray(text_vectors, np.float32), trainable=False,
                                      name="text_vectors")

  def query_embedding(self, item_ids) -> tf.Tensor:
    """item_ids int [B, L] model ids of the refreshed vocabulary -> float32 [B, d]."""
    history = self.vocabulary.item_ids(tf.cast(item_ids, tf.int64) - 1)   # padding -> ""
    return self.base.query_embedding(history=history)[contract.OUTPUT_EMBEDDING]

  def score_all(self, item_ids) -> tf.Tensor:
    return tf.matmul(self.query_embedding(item_ids), self.item_embeddings, transpose_b=True)


@dataclasses.dataclass
class ServedModel:
  """What a served version holds, read from its SavedModel.

  Attributes:
    base: the trained RecommenderModule (as loaded), also under a refreshed version.
    item_ids: the catalogue in vocabulary order.
    embeddings: float32 [V, d] candidate matrix.
    available: bool [V], the served availability.
    in_catalogue: bool [V], False for items a refresh removed.
    text_vectors: float32 [V, t] per-item text vectors; None for id-only models.
    max_seq_len: the query tower's history length.
    attribute_vocab: attribute values in index order ([] without attribute embeddings).
  """
  base: object
  item_ids: List[str]
  embeddings: np.ndarray
  available: np.ndarray
  in_catalogue: np.ndarray
  text_vectors: Optional[np.ndarray]
  max_seq_len: int
  attribute_vocab: List[str]

  @property
  def keras_model(self):
    """The trained Keras model inside ``base`` (restored): encoder, attribute table."""
    model = self.base.model
    return model if hasattr(model, "encoder") else model.model   # FixedCandidates holds it

  @property
  def uses_item_text(self) -> bool:
    return self.text_vectors is not None


def read_served_model(model_dir: str) -> ServedModel:
  """Loads the SavedModel in ``model_dir`` (a pushed or a refreshed version)."""
  loaded = tf.saved_model.load(model_dir)
  outputs = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  item_ids = [i.decode() for i in outputs[contract.OUTPUT_ITEM_IDS].numpy().tolist()]
  embeddings = outputs[contract.OUTPUT_EMBEDDINGS].numpy()
  num_items = len(item_ids)
  available = (loaded.available.numpy() if hasattr(loaded, "available")
               else np.ones([num_items], bool))
  refreshed = hasattr(loaded.model, "base")
  base = loaded.model.base if refreshed else loaded
  served = ServedModel(base, item_ids, embeddings, available,
                       loaded.model.in_catalogue.numpy() if refreshed
                       else np.ones([num_items], bool),
                       None, 0, _attribute_vocab(model_dir))
  encoder = served.keras_model.encoder
  served.max_seq_len = int(encoder.position_table.embeddings.shape[0])
  if refreshed:
    text = getattr(loaded.model, "text_vectors", None)
    served.text_vectors = None if text is None else text.numpy()
  elif hasattr(encoder, "item_text"):
    served.text_vectors = encoder.item_text.vectors.numpy()[1:num_items + 1]
  return served


def _attribute_vocab(model_dir: str) -> List[str]:
  path = os.path.join(model_dir, "assets", features.ATTRIBUTE_VOCAB)
  if not os.path.isfile(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]


class CandidateTower:
  """The trained candidate tower of a served text model, rebuilt from its variables.

  An item's candidate embedding is its id embedding (``id+text``; zeros for an item
  the model never saw) plus the trained adaptor over its text vector, plus the mean
  of its attribute embeddings when the model learned attribute embeddings, L2-normalised
  when the model normalises its embeddings, followed by the unit text vector when the
  model scores a text match: what ``RetrievalModel.candidate_embeddings`` computes for
  its catalogue.
  """

  def __init__(self, served: ServedModel):
    model = served.keras_model
    encoder = model.encoder
    trained = encoder.item_text.adaptor
    projection = trained.projection.numpy()
    self.adaptor = MoEAdaptor(projection.shape[2], projection.shape[0], dropout=0.0)
    self.adaptor.build([None, projection.shape[1]])
    for mine, theirs in ((self.adaptor.shift, trained.shift),
                         (self.adaptor.projection, trained.projection),
                         (self.adaptor.gate, trained.gate)):
      mine.assign(theirs)
    self.id_table = (encoder.item_table.embeddings.numpy()
                     if hasattr(encoder, "item_table") else None)
    self.num_trained_items = (encoder.item_text.vectors.shape[0] - 2)
    self.attribute_table = (model.attribute_table.embeddings.numpy()
                            if hasattr(model, "attribute_table") else None)
    self.attribute_index = {value: a for a, value in enumerate(served.attribute_vocab)}
    # RetrievalConfig.normalize_embeddings: the exported rows are unit vectors.
    self.normalized = hasattr(served.base.model, "normalized_candidates")
    # RetrievalConfig.text_match: the rows end with the item's unit text vector.
    self.text_match = hasattr(served.base.model, "text_match_candidates")

  def embed(self, text_vectors: np.ndarray, trained_indices: Sequence[int],
            attributes: Sequence[Sequence[str]]) -> np.ndarray:
    """float32 [n, d] candidate embeddings.

    Args:
      text_vectors: float [n, t], the items' text vectors.
      trained_indices: per item, its vocabulary index in the trained model, -1 if new.
      attributes: per item, its attribute values.
    """
    out = self.adaptor(tf.constant(text_vectors, tf.float32)).numpy()
    if self.id_table is not None:
      rows = np.asarray(trained_indices, np.int64)
      known = (rows >= 0) & (rows < self.num_trained_items)
      out[known] += self.id_table[rows[known] + 1]
    if self.attribute_table is not None and self.attribute_index:
      rows = [[self.attribute_index[a] for a in values if a in self.attribute_index]
              for values in attributes]
      if any(rows):
        table = ItemAttributeTable(rows, len(self.attribute_index))
        out += table.mean_embeddings(tf.constant(self.attribute_table)).numpy()
    if self.normalized:
      out = tf.math.l2_normalize(out, axis=-1).numpy()
    if self.text_match:
      out = np.concatenate([out, text_match.unit_rows(text_vectors).numpy()], axis=1)
    return out


def build_module(served: ServedModel, item_ids: Sequence[str], embeddings: np.ndarray,
                 available: np.ndarray, in_catalogue: np.ndarray,
                 text_vectors: Optional[np.ndarray], asset_dir: str,
                 attributes: Optional[Sequence[Sequence[str]]] = None
                 ) -> export.RecommenderModule:
  """The refreshed RecommenderModule: ``served``'s query tower, the given catalogue.

  ``item_ids`` extends ``served.item_ids`` (same order first); the vocabulary file is
  written to ``asset_dir`` and becomes an asset of the SavedModel. ``attributes``: per
  item, its attribute values from the updated table, for the ``recommend`` rules.
  """
  if list(item_ids[:len(served.item_ids)]) != served.item_ids:
    raise ValueError("a refreshed catalogue keeps the served items' vocabulary order")
  os.makedirs(asset_dir, exist_ok=True)
  vocab_file = os.path.join(asset_dir, VOCAB_ASSET)
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("".join(f"{item}\n" for item in item_ids))
  vocabulary = export.HashTableItemVocabulary(vocab_file, len(item_ids))
  candidates = RefreshedCandidates(served.base, vocabulary, embeddings, in_catalogue,
                                   text_vectors)
  return export.RecommenderModule(candidates, vocabulary, served.max_seq_len,
                                  attributes=serving_attributes(attributes, len(item_ids)),
                                  available=np.asarray(available, bool))


def serving_attributes(attributes: Optional[Sequence[Sequence[str]]],
                       num_items: int) -> export.ItemAttributes:
  """The rules' attribute table: per item (vocabulary order) its values, or none."""
  if not attributes:
    return export.ItemAttributes.empty(num_items)
  values = sorted({v for row in attributes for v in row if v})
  index = {v: a for a, v in enumerate(values)}
  return export.ItemAttributes(values, [[index[v] for v in row if v] for row in attributes])


@dataclasses.dataclass
class Refresh:
  """A refreshed catalogue (arrays in vocabulary order) and what changed."""
  item_ids: List[str]
  embeddings: np.ndarray
  available: np.ndarray
  in_catalogue: np.ndarray
  text_vectors: Optional[np.ndarray]
  added: List[str] = dataclasses.field(default_factory=list)
  changed: List[str] = dataclasses.field(default_factory=list)
  removed: List[str] = dataclasses.field(default_factory=list)
  not_added: List[str] = dataclasses.field(default_factory=list)   # new, but no vector
  unknown_availability: List[str] = dataclasses.field(default_factory=list)
  attributes: List[List[str]] = dataclasses.field(default_factory=list)   # per item

  @property
  def num_unavailable(self) -> int:
    """Items of the table that are out of stock."""
    return int(np.sum(self.in_catalogue & ~self.available))


def plan_refresh(served: ServedModel, table_ids: Sequence[str],
                 table_attributes: Sequence[Sequence[str]],
                 vectors: Mapping[str, np.ndarray],
                 in_stock: Mapping[str, bool]) -> Refresh:
  """The catalogue after a refresh with an updated item table.

  Args:
    served: the version to extend.
    table_ids, table_attributes: the updated item table (ids, attribute values).
    vectors: item id -> text vector, for the items to add or to check for a change
      (any subset of the table; ignored for id-only models).
    in_stock: item id -> whether it is in stock; items not given keep their served
      state (in stock when new or back in the table).

  Served items missing from ``table_ids`` stay in the vocabulary (histories keep them)
  but are never served again unless the table lists them again.
  """
  index: Dict[str, int] = {item: j for j, item in enumerate(served.item_ids)}
  refresh = Refresh(list(served.item_ids), served.embeddings.copy(), np.zeros(0, bool),
                    np.zeros(0, bool),
                    None if served.text_vectors is None else served.text_vectors.copy())
  pending = []   # (position in the refreshed vocabulary, vector, attributes)
  for item, attributes in zip(table_ids, table_attributes):
    j, vector = index.get(item), vectors.get(item)
    if j is None:
      if not served.uses_item_text or vector is None:
        refresh.not_added.append(item)
        continue
      j = index[item] = len(refresh.item_ids)
      refresh.item_ids.append(item)
      refresh.added.append(item)
    elif (not served.uses_item_text or vector is None or
          np.max(np.abs(vector - refresh.text_vectors[j])) <= CHANGE_TOLERANCE):
      continue
    else:
      refresh.changed.append(item)
    pending.append((j, vector, attributes))
  _embed_pending(served, refresh, pending)
  in_table = set(table_ids)
  refresh.in_catalogue = np.array([item in in_table for item in refresh.item_ids], bool)
  refresh.removed = [item for j, item in enumerate(served.item_ids)
                     if served.in_catalogue[j] and not refresh.in_catalogue[j]]
  refresh.available = _stock(served, refresh, index, in_stock) & refresh.in_catalogue
  table = dict(zip(table_ids, table_attributes))
  refresh.attributes = [list(table.get(item, ())) for item in refresh.item_ids]
  return refresh


def _embed_pending(served: ServedModel, refresh: Refresh, pending) -> None:
  """Computes the candidate rows of added and changed items, in place."""
  if not pending:
    return
  positions = [j for j, _, _ in pending]
  text = np.stack([np.asarray(v, np.float32) for _, v, _ in pending])
  if text.shape[1] != refresh.text_vectors.shape[1]:
    raise ValueError(f"item vectors are {text.shape[1]}-d; the model was trained on "
                     f"{refresh.text_vectors.shape[1]}-d vectors: embed with the encoder "
                     "the model was trained with")
  rows = CandidateTower(served).embed(text, positions, [a for _, _, a in pending])
  grow = max(positions) + 1 - len(refresh.embeddings)
  if grow > 0:
    refresh.embeddings = np.concatenate(
        [refresh.embeddings, np.zeros([grow, refresh.embeddings.shape[1]], np.float32)])
    refresh.text_vectors = np.concatenate(
        [refresh.text_vectors, np.zeros([grow, text.shape[1]], np.float32)])
  refresh.embeddings[positions] = rows
  refresh.text_vectors[positions] = text


def _stock(served: ServedModel, refresh: Refresh, index: Mapping[str, int],
           in_stock: Mapping[str, bool]) -> np.ndarray:
  """bool [V]: in stock: as ``in_stock`` says, else as served (new and returning items: yes)."""
  stock = np.ones([len(refresh.item_ids)], bool)
  served_stock = served.available | ~served.in_catalogue
  stock[:len(served_stock)] = served_stock
  for item, value in in_stock.items():
    j = index.get(item)
    if j is None:
      refresh.unknown_availability.append(item)
    else:
      stock[j] = value
  return stock
