"""Full-ranking validation during training: ranks agree with the evaluator's, and early stopping can use them."""

import numpy as np
import tensorflow as tf

from components.ranking_evaluator import metrics
from trainer import ranking_validation
from trainer.config import EncoderConfig
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.model import NextItemModel


def test_target_ranks_exclude_history_but_not_the_target_and_match_the_evaluator():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(4, 30)).astype(np.float32)
  histories = [[3, 7], [], [5, 5, 9, 11], [2]]
  targets = np.array([4, 0, 9, 2])   # rows 2 and 3: the target is also in the history
  width = 4
  inputs = np.zeros((4, width), np.int32)
  for row, history in enumerate(histories):
    if history:
      inputs[row, width - len(history):] = np.asarray(history) + 1
  got = ranking_validation.target_ranks(tf.constant(scores), tf.constant(inputs),
                                        tf.constant(targets)).numpy()
  want = metrics.ranks_of_targets(scores, targets, histories)  # 1-based
  np.testing.assert_array_equal(got + 1, want)


def test_callback_logs_metrics_that_early_stopping_can_monitor():
  config = EncoderConfig(embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1, max_seq_len=4)
  model = NextItemModel(6, config)
  model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  # Every sequence is 1 -> 2 -> 3 ...: item i is followed by item i + 1.
  inputs = tf.constant([[0, 1, 2, 3], [0, 0, 2, 3], [1, 2, 3, 4], [0, 0, 0, 1]], tf.int32)
  train_labels = tf.constant([[-1, 1, 2, 3], [-1, -1, 2, 3], [1, 2, 3, 4], [-1, -1, -1, 1]],
                             tf.int32)
  eval_labels = tf.constant([[-1, -1, -1, 3], [-1, -1, -1, 3], [-1, -1, -1, 4],
                             [-1, -1, -1, 1]], tf.int32)
  train = tf.data.Dataset.from_tensors({INPUTS: inputs, LABELS: train_labels}).repeat(5)
  evaluation = tf.data.Dataset.from_tensors({INPUTS: inputs, LABELS: eval_labels})
  callback = ranking_validation.RankingValidation(evaluation, k=1)
  stop = tf.keras.callbacks.EarlyStopping(monitor=ranking_validation.ndcg_name(1), mode="max",
                                          patience=3, restore_best_weights=True)
  history = model.fit(train, epochs=8, callbacks=[callback, stop], verbose=0)
  hr = history.history[ranking_validation.hr_name(1)]
  assert 0.0 <= min(hr) and max(hr) == 1.0     # learns the successor of every item
  assert history.history[ranking_validation.ndcg_name(1)] == hr   # NDCG@1 == HR@1
