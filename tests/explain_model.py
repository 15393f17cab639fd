"""A tiny untrained trainer export with the ``explain`` signature, for the explanation tests."""

import dataclasses
import os

import tensorflow as tf

from trainer import explain
from trainer import export
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.retrieval import RetrievalModel

NUM_ITEMS = 30
CONFIG = EncoderConfig(max_seq_len=6, embedding_dim=16, num_blocks=2, num_heads=2, ff_dim=16,
                       dropout=0.0)
CATALOGUE = [f"item{j}" for j in range(NUM_ITEMS)]


def build_module(folder: str, config: EncoderConfig = CONFIG, seed: int = 0):
  """A ``RecommenderModule`` over a fresh ``RetrievalModel`` and the ``CATALOGUE``."""
  tf.keras.utils.set_random_seed(seed)
  model = RetrievalModel(NUM_ITEMS, config, RetrievalConfig())
  vocabulary_file = os.path.join(folder, "vocabulary.txt")
  with open(vocabulary_file, "w", encoding="utf-8") as f:
    f.write("".join(f"{item}\n" for item in CATALOGUE))
  return export.RecommenderModule(
      model, export.HashTableItemVocabulary(vocabulary_file, NUM_ITEMS), config.max_seq_len)


def export_model(folder: str, config: EncoderConfig = CONFIG, seed: int = 0) -> str:
  """Writes the module of ``build_module`` as a SavedModel; returns its folder."""
  os.makedirs(folder, exist_ok=True)
  return export.save_module(build_module(folder, config, seed), os.path.join(folder, "model"))


def all_because(module, max_because: int = CONFIG.max_seq_len):
  """The module's explain function naming every history item of the window."""
  return explain.explain_function(module, max_because)


def causal(config: EncoderConfig = CONFIG) -> EncoderConfig:
  return dataclasses.replace(config, attention="causal")
