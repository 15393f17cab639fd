"""A tiny randomly initialised BERT sentence encoder saved to a folder, for the item-text tests."""

import json
import os
from typing import Optional

# Whole words plus single CJK characters (BERT's tokenizer splits CJK text per character).
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "(", ")", "-", "the", "toy",
         "story", "2", "1995", "1999", "1972", "golden", "##eye", "animation", "comedy", "action",
         "der", "pate", "крестныи", "отец", "玩", "具", "总", "动", "员", "教", "父", "大", "话",
         "西", "游", "uber", "film"]
HIDDEN_SIZE = 16


def save_tiny_bert(folder: str, pooling: Optional[str] = None, seed: int = 0,
                   max_positions: int = 32) -> str:
  """Saves a 2-layer TFBertModel with random weights and a WordPiece tokenizer.

  Args:
    folder: created; receives config.json, tf_model.h5 and the tokenizer files.
    pooling: when set, a sentence-transformers modules.json with a Pooling module whose
      config turns on ``pooling_mode_<pooling>`` (e.g. "cls_token", "max_tokens").
    seed: the weights' random seed.
    max_positions: the model's max_position_embeddings.

  Returns:
    ``folder``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  vocab_path = os.path.join(folder, "vocab.txt")
  with open(vocab_path, "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB) + "\n")
  transformers.BertTokenizerFast(vocab_file=vocab_path, do_lower_case=True).save_pretrained(folder)
  config = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=HIDDEN_SIZE,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=max_positions)
  tf.keras.utils.set_random_seed(seed)
  model = transformers.TFBertModel(config)
  model(model.dummy_inputs)
  model.save_pretrained(folder)
  if pooling is not None:
    _write_json(os.path.join(folder, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}])
    _write_json(os.path.join(folder, "1_Pooling", "config.json"),
                {"word_embedding_dimension": HIDDEN_SIZE, "pooling_mode_mean_tokens": False,
                 f"pooling_mode_{pooling}": True})
  return folder


def _write_json(path: str, value) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f)
