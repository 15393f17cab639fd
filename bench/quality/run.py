"""Quality benchmark: fine-tune-only vs self-supervised pre-training + fine-tuning.

Protocol, variants and recipes: bench/quality/results/README.md.
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
import typing
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from bench.quality import data as data_lib
from components.ranking_evaluator import metrics
from components.ranking_evaluator import slices
from trainer import features
from trainer import inputs
from trainer import ranking_validation
from trainer import retrieval
from trainer import run_fn
from trainer import warm_start
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import ModelConfig
from trainer.config import Targets
from trainer.config import load_json_object
from trainer.config import load_model_config
from trainer.model import INPUTS
from trainer.pretrain_run_fn import pretrain
from trainer.pretraining import objectives
from trainer.pretraining.clustering import ClusteringCallback
from trainer.pretraining.config import PretrainConfig
from trainer.retrieval import RetrievalConfig
from trainer.retrieval import RetrievalModel
from trainer.run_fn import compile_model

OBJECTIVES = objectives.NAMES


@dataclasses.dataclass(frozen=True)
class Variant:
  """What a benchmark run trains.

  Attributes:
    pretrain: pre-train the encoder (``--pretrain-config``) before fine-tuning.
    auxiliary: fine-tune with the auxiliary self-supervised objectives
      (``--auxiliary-config``) next to the retrieval loss.
    without: an objective switched off in both (the ablation).
  """
  pretrain: bool
  auxiliary: bool
  without: str = ""


VARIANTS = {
    "finetune_only": Variant(pretrain=False, auxiliary=False),
    "finetune_ssl": Variant(pretrain=False, auxiliary=True),
    "pretrain_finetune": Variant(pretrain=True, auxiliary=False),
    "pretrain_finetune_ssl": Variant(pretrain=True, auxiliary=True),
    **{f"pretrain_finetune_without_{name}": Variant(True, False, name) for name in OBJECTIVES},
    **{f"pretrain_finetune_ssl_without_{name}": Variant(True, True, name)
       for name in OBJECTIVES},
}
HEADLINE = ("finetune_only", "pretrain_finetune")
# The default ablation removes each objective the default pre-training recipe uses;
# removing one it leaves off (weight 0) would repeat the full run.
DEFAULT_VARIANTS = HEADLINE + tuple(
    f"pretrain_finetune_without_{name}" for name in OBJECTIVES
    if getattr(PretrainConfig(), objectives.weight_field(name)) > 0)
# The fine-tuning recipe every variant of a dataset shares, configs/<dataset>.json
# (else configs/default.json): a bidirectional query tower trained on every prefix
# of the training sequences (S3-Rec/BSARec targets), dropout 0.5. On Beauty,
# BSARec's frequency filter (alpha 0.7, 3 bins) at lr 5e-4 gained on validation and
# test over three seeds; on LastFM it lost (one seed). Beauty's encoder is d = 128
# (feed-forward 128): it gains on validation for both headline variants, and there
# pre-training comes out ahead of fine-tuning alone on test, inside the seed spread
# (bench/quality/results/README.md).
RECIPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")
DEFAULT_RECIPE = "default"
DEFAULT_RETRIEVAL_CONFIG = '{"targets": "prefixes"}'
DEFAULT_AUXILIARY = '{"contrastive_weight": 0.1, "clustering_weight": 0.1}'
KS = (5, 10, 20)
# TrainingSchedule speed fields, with the value every run had before the field existed.
SPEED_SETTINGS = {"mixed_precision": "float32", "jit_compile": False, "optimizer": "adam"}
# ModelConfig fields added after runs were recorded, by section, at the value those runs had.
LATER_FIELDS = {"schedule": SPEED_SETTINGS,
                "warm_start": {"carry_optimizer": False, "shrink": 1.0}}
# warm_start fields that change only a run started from a fine-tuned model (--warm-start-from):
# left out of every other run's key, so a recipe that sets them keeps its scratch runs.
WARM_ONLY_FIELDS = ("shrink",)

# Reference full-ranking results on the same S3-Rec preprocessing and protocol.
REFERENCE_RESULTS = {
    "beauty": [
        ("SASRec (S3-Rec paper, published)", 0.0605, 0.0318),
        ("S3-Rec (published)", 0.0647, 0.0327),
        ("ICLRec (published)", 0.0744, 0.0403),
        ("BSARec (AAAI 2024, published)", 0.1008, 0.0611),
        ("SASRec, full-softmax CE (reference probe on these machines, 1 seed)", 0.0813, 0.0509),
    ],
    "lastfm": [("BSARec (AAAI 2024, published)", 0.0807, None)],
}


def _machine() -> Dict[str, object]:
  cpu = "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
          "platform": platform.platform()}


def _commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


# ----------------------------------------------------------------------------
# One run (in a child process).


COLD_SLICES = tuple(slices.slice_key(slices.COLD_START, v)
                    for v in (slices.COLD_ITEMS, slices.WARM_ITEMS))


def cold_slices(data, ranks: np.ndarray) -> Dict[str, Dict[str, float]]:
  """Test metrics of the users whose target is a held-out item, and of the rest: the
  cold-start slices of ``test_slices``, there even when no item was held out."""
  return test_slices(data, {}, ranks, COLD_SLICES)


def train_counts(data) -> Dict[int, int]:
  """Vocabulary index -> occurrences in ``data``'s training rows (history and target), as
  the evaluator counts them (``evaluation.train_item_counts``)."""
  split = features.TRAIN_SPLIT
  counts = np.bincount(np.concatenate([np.concatenate(data.histories[split] or [[]]),
                                       data.targets[split]]).astype(np.int64),
                       minlength=data.num_items)
  return {int(i): int(c) for i, c in enumerate(counts) if c > 0}


def test_slices(data, counts: Dict[int, int], ranks: np.ndarray,
                names: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
  """The evaluator's slices of the test users (``slices.assign``): history length and
  popularity band of the target by ``counts``; the cold-start family only when items
  were held out (else every target would be warm). ``names``: these slices instead."""
  split = features.TEST_SPLIT
  masks = slices.assign([len(h) for h in data.histories[split]], data.targets[split].tolist(),
                        counts, data.cold_items)
  if names is None:
    names = [name for name in masks if data.cold_items or name not in COLD_SLICES]
  return slices.slice_metrics(ranks, {name: masks[name] for name in names}, KS)


@dataclasses.dataclass
class Pretrained:
  """What fine-tuning takes from pre-training (the encoder weights and the attribute
  embeddings), with the record of the pre-training run; saved to reuse across runs."""
  encoder_weights: List[np.ndarray]
  attribute_embeddings: Optional[np.ndarray]
  record: Dict[str, object]

  @classmethod
  def of(cls, model, record: Dict[str, object]) -> "Pretrained":
    attributes = model.attribute_embeddings
    return cls(model.encoder.get_weights(),
               None if attributes is None else np.asarray(attributes), record)

  def transfer_to(self, model) -> None:
    model.encoder.set_weights(self.encoder_weights)
    if model.attribute_table is not None and self.attribute_embeddings is not None:
      model.attribute_table.embeddings.assign(self.attribute_embeddings)

  def differences(self, encoder_config, pretrain_config) -> Dict[str, tuple]:
    """``{field: (saved, wanted)}`` of the encoder and pre-training config fields this
    pre-training was saved with that differ from ``encoder_config`` / ``pretrain_config``.
    Fields only one side names are left out (a field added since keeps its default, as
    ``pretrained_key`` assumes); saves of older commits have no encoder config."""
    differ = {}
    for name, config in (("encoder_config", encoder_config), ("pretrain_config", pretrain_config)):
      saved, wanted = leaves(self.record.get(name, {})), leaves(config.to_dict())
      differ.update({f"{name}.{k}": (saved[k], wanted[k]) for k in sorted(set(saved) & set(wanted))
                     if saved[k] != wanted[k]})
    return differ

  def save(self, folder: str) -> None:
    """Writes ``folder`` whole or not at all (a temporary folder renamed)."""
    tmp = folder.rstrip("/") + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    arrays = {f"encoder_{i}": w for i, w in enumerate(self.encoder_weights)}
    if self.attribute_embeddings is not None:
      arrays["attribute_embeddings"] = self.attribute_embeddings
    np.savez(os.path.join(tmp, PRETRAINED_WEIGHTS), **arrays)
    with open(os.path.join(tmp, PRETRAINED_RECORD), "w") as f:
      json.dump(self.record, f, indent=1)
    os.replace(tmp, folder)

  @classmethod
  def load(cls, folder: str) -> "Pretrained":
    with np.load(os.path.join(folder, PRETRAINED_WEIGHTS)) as arrays:
      weights = [arrays[f"encoder_{i}"] for i in range(len(arrays.files))
                 if f"encoder_{i}" in arrays.files]
      attributes = (arrays["attribute_embeddings"] if "attribute_embeddings" in arrays.files
                    else None)
    with open(os.path.join(folder, PRETRAINED_RECORD)) as f:
      return cls(weights, attributes, json.load(f))


PRETRAINED_WEIGHTS, PRETRAINED_RECORD = "weights.npz", "record.json"


def _test_ranks(model, data, config) -> np.ndarray:
  """Full-ranking ranks of the test targets, the user's whole history excluded."""
  split = features.TEST_SPLIT
  dataset = inputs.make_dataset(data.files[split], data_lib.SPEC, data.num_items,
                                config.encoder.max_seq_len, config.schedule.batch_size,
                                training=False, bucket_by_length=False, cache=False)
  score = tf.function(model.score_all, reduce_retracing=True)
  ranks, start = [], 0
  for batch in dataset:
    scores = score(batch[INPUTS]).numpy()
    end = start + len(scores)
    ranks.append(metrics.ranks_of_targets(scores, data.targets[split][start:end],
                                          data.histories[split][start:end]))
    start = end
  return np.concatenate(ranks)


# An epoch timing counts as shared (other work on the cores) when the 1-minute load
# average at its start or end exceeds this many times the core count: training alone
# keeps the load near the core count (its runnable threads), other jobs add theirs.
SHARED_LOAD_PER_CORE = 1.5


def load_average() -> float:
  """The 1-minute load average (0 where the OS does not report one)."""
  try:
    return round(os.getloadavg()[0], 2)
  except OSError:
    return 0.0


def is_shared(loads: List[List[float]], cores: int) -> bool:
  """Whether any [start, end] load average of ``loads`` says the cores were shared."""
  return any(load > SHARED_LOAD_PER_CORE * cores for pair in loads for load in pair)


def zero_id_rows(encoder, items) -> None:
  """Sets the id embedding of ``items`` (vocabulary indices) to zero, as catalogue
  refresh serves an item the model never trained on (trainer.catalogue_refresh)."""
  encoder.zero_item_ids(np.asarray(sorted(items), np.int64))


def epoch_model(serving_dir: str, epoch: int) -> str:
  """Where ``--save-warm-start-each-epoch`` of a run saving to ``serving_dir`` writes the
  weights after epoch ``epoch`` (1-based): ``<its parent>/epoch-<epoch>/serving``."""
  return os.path.join(os.path.dirname(serving_dir.rstrip("/")), f"epoch-{epoch}", "serving")


def warm_start_source(args) -> str:
  """The saved model a warm run starts from: ``--warm-start-from``, or its epoch
  ``--warm-start-epoch`` (an error naming the folder when that epoch was not saved)."""
  if not args.warm_start_epoch:
    return args.warm_start_from
  source = epoch_model(args.warm_start_from, args.warm_start_epoch)
  if not tf.io.gfile.exists(warm_start.warm_start_dir(source)):
    raise ValueError(f"--warm-start-epoch {args.warm_start_epoch}: no "
                     f"{warm_start.warm_start_dir(source)}; the saved run needs "
                     "--save-warm-start-each-epoch and at least that many epochs")
  return source


class EpochSaver(tf.keras.callbacks.Callback):
  """Calls ``save(epoch_model(serving_dir, n))`` at the end of each epoch n."""

  def __init__(self, save: Callable[[str], None], serving_dir: str):
    super().__init__()
    self._save, self._serving_dir = save, serving_dir

  def on_epoch_end(self, epoch, logs=None):
    self._save(epoch_model(self._serving_dir, epoch + 1))


class EpochTimer(tf.keras.callbacks.Callback):
  """Records each epoch's wall time (training steps; later callbacks not included), the
  1-minute load average at its start and end (``is_shared``), and the wall time from the
  start of training to the end of each epoch, later callbacks (validation) included."""

  def __init__(self):
    super().__init__()
    self.seconds = []
    self.loads = []
    self.ends = []
    self._train_start = None
    self._start = None
    self._start_load = None

  def on_train_begin(self, logs=None):
    self._train_start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    if epoch > 0:   # the previous epoch and its callbacks are done
      self.ends.append(time.perf_counter() - self._train_start)
    self._start_load = load_average()
    self._start = time.perf_counter()

  def on_train_end(self, logs=None):
    self.ends.append(time.perf_counter() - self._train_start)

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)
    self.loads.append([self._start_load, load_average()])


def with_newest(train_ds: tf.data.Dataset, newest: tf.data.Dataset, repeats: int,
                seed: int) -> tf.data.Dataset:
  """An epoch of ``train_ds``'s batches plus ``repeats`` passes over ``newest``'s (each
  training sequence's newest transition: the training split read as evaluation rows, one
  label at the last position as a prefix row has), drawn at random in proportion to
  their counts so the extra batches spread over the epoch."""
  def count(dataset):
    return int(dataset.reduce(0, lambda n, _: n + 1))
  newest_batches = count(newest)
  extra = newest.shuffle(newest_batches, seed=seed).repeat(repeats)
  batches = np.array([count(train_ds), newest_batches * repeats], np.float64)
  return tf.data.Dataset.sample_from_datasets(
      [train_ds, extra], weights=list(batches / batches.sum()), seed=seed,
      stop_on_empty_dataset=False)


def retrieval_config_of(args) -> RetrievalConfig:
  """The fine-tuning RetrievalConfig of the run ``args``: its retrieval config with its
  seed, the variant's auxiliary objectives and a warm run's ``--warm-start-targets``."""
  values = {**load_json_object(args.retrieval_config, "retrieval config"),
            "seed": args.seed, "auxiliary": {}}
  if VARIANTS[args.variant].auxiliary:
    auxiliary = {**load_json_object(args.auxiliary_config, "auxiliary config"),
                 **_without(args.variant), "seed": args.seed}
    if any(auxiliary.get(field, 0) > 0 for field in objectives.WEIGHT_FIELDS):
      values["auxiliary"] = auxiliary
  if args.warm_start_from and args.warm_start_targets:
    values["targets"] = args.warm_start_targets
  return RetrievalConfig(**values)


def run_model_config(args) -> ModelConfig:
  """The run's ModelConfig: the recipe with the run's seed and epochs, and the
  ``--warm-start-*`` options that are set over the recipe's ``warm_start``."""
  model_config = load_model_config(args.model_config)
  model_config.schedule = dataclasses.replace(model_config.schedule, seed=args.seed,
                                              epochs=args.finetune_epochs)
  model_config.warm_start = dataclasses.replace(model_config.warm_start, **{
      WARM_START_FIELDS[name]: value
      for name, value in warm_start_settings(args, "warm-start").items()
      if name in WARM_START_FIELDS})
  return model_config


def run_one(args) -> Dict[str, object]:
  """Pre-trains (unless fine-tune only), fine-tunes, tests; returns the run's record."""

  variant = VARIANTS[args.variant]
  model_config = run_model_config(args)
  encoder_config, schedule = model_config.encoder, model_config.schedule
  full = data_lib.prepare(args.dataset, os.path.join(args.work_dir, "data"), args.data_dir,
                          max_seq_len=encoder_config.max_seq_len, **_cold_args(args))
  data = full
  if args.train_user_fraction < 1:   # fine-tuning only: pre-training sees every user
    data = data_lib.sample_training_users(full, args.train_user_fraction, args.seed,
                                          os.path.join(args.work_dir, "data"),
                                          encoder_config.max_seq_len)
  item_vectors = run_fn.item_vectors_from({ITEM_VECTORS_KEY: args.item_vectors},
                                          encoder_config, data.item_ids)
  record = {"variant": args.variant, "seed": args.seed, "dataset": args.dataset,
            "commit": _commit(),
            "num_items": data.num_items, "num_users": data.num_users,
            "model_config": model_config.to_dict()}
  if args.train_user_fraction < 1:
    record["train_user_fraction"] = args.train_user_fraction
    record["train_users"] = len(data.targets[features.TRAIN_SPLIT])
  spec = data_lib.SPEC
  retrieval_config = retrieval_config_of(args)
  record["retrieval_config"] = retrieval_config.to_dict()
  pretrained = None
  if variant.pretrain:
    pretrain_config = pretrain_config_of(args, args.variant, args.seed)
    if data.attributes is None and pretrain_config.attribute_weight > 0:
      pretrain_config = dataclasses.replace(pretrain_config, attribute_weight=0.0)
    if args.pretrained_from:
      pretrained = Pretrained.load(args.pretrained_from)
      differ = pretrained.differences(encoder_config, pretrain_config)
      if differ:
        raise ValueError(f"{args.pretrained_from} was pre-trained with other settings "
                         f"(field: saved, wanted): {differ}")
      record["pretrained_from"] = args.pretrained_from
    else:
      pretrained = _pretrain(full, encoder_config, pretrain_config, item_vectors,
                             retrieval_config.exclude_untrained_items)
      if args.save_pretrained:
        pretrained.save(args.save_pretrained)
    record.update(pretrained.record)

  tf.keras.utils.set_random_seed(args.seed)

  def dataset(split, training):
    return inputs.make_dataset(
        data.files[split], spec, data.num_items, encoder_config.max_seq_len,
        schedule.batch_size, training=training, shuffle_seed=args.seed,
        prefixes=training and retrieval_config.trains_on_prefixes)

  # The held-out (cold) items, found in the training batches as the Trainer finds them.
  untrained = retrieval.untrained_to_exclude(lambda: dataset("train", True), data.num_items,
                                             encoder_config,
                                             retrieval_config.exclude_untrained_items)
  if untrained is not None:
    record["excluded_untrained_items"] = int(untrained.sum())
  model = RetrievalModel(data.num_items, encoder_config, retrieval_config, data.attributes,
                         item_vectors=item_vectors, untrained=untrained)
  compile_model(model, schedule)
  schedules = []
  if args.warm_start_from:   # as the Trainer's run_fn does
    record["warm_start"], warm = run_fn.warm_start_run(
        model_config, model, data.item_ids, warm_start_source(args), data.attribute_vocab,
        keep=args.warm_start_keep)
    schedules += [warm] if warm else []
  if pretrained is not None:
    pretrained.transfer_to(model)

  validation = ranking_validation.RankingValidation(dataset("eval", False), k=10)
  monitor = ranking_validation.ndcg_name(10)
  timer = EpochTimer()
  train_ds = dataset("train", True)
  if args.warm_start_from and args.warm_start_newest_repeats:
    train_ds = with_newest(train_ds, dataset("train", False), args.warm_start_newest_repeats,
                           args.seed)

  def save(serving_dir):   # Adam's state too, for a later --warm-start-optimizer
    warm_start.save(model, data.item_ids, serving_dir, data.attribute_vocab, optimizer=True)

  savers = []
  if args.save_warm_start_each_epoch:   # after the timer: not counted in the epoch's time
    savers.append(EpochSaver(save, args.save_warm_start))
  callbacks = [*ClusteringCallback.for_model(model, train_ds, model.auxiliary_config),
               *schedules, timer, validation, *savers, tf.keras.callbacks.EarlyStopping(
                   monitor=monitor, mode="max", patience=args.patience,
                   restore_best_weights=True)]
  start = time.perf_counter()
  history = model.fit(train_ds, epochs=schedule.epochs,
                      callbacks=callbacks, verbose=2)
  record["finetune_seconds"] = round(time.perf_counter() - start, 1)
  record["finetune_epochs_run"] = len(timer.seconds)
  record["epoch_seconds"] = [round(s, 2) for s in timer.seconds]
  record["epoch_end_seconds"] = [round(s, 2) for s in timer.ends]
  median_epoch = float(np.median(timer.seconds))
  record["median_epoch_seconds"] = round(median_epoch, 2)
  record["epoch_load_average"] = timer.loads
  record["shared_cores"] = is_shared(timer.loads, os.cpu_count() or 1)
  # Training-step time only: the validation ranking runs in on_epoch_end, after the timer.
  record["train_predictions_per_second"] = round(data.train_labels / median_epoch, 1)
  record["finetune_history"] = {k: [float(x) for x in v] for k, v in history.history.items()}
  if model.text_match_weight is not None:   # learned unless fixed
    record["text_match_weight"] = round(float(model.text_match_weight), 4)
  best = int(np.argmax(history.history[monitor]))
  record["best_epoch"] = best + 1
  record["validation"] = {k: float(history.history[k][best])
                          for k in (monitor, ranking_validation.hr_name(10))}
  if args.zero_cold_ids:
    zero_id_rows(model.encoder, data.cold_items)
  ranks = _test_ranks(model, data, model_config)
  record["test"] = metrics.summarize(ranks, KS)
  record["test_slices"] = test_slices(data, train_counts(full), ranks)
  if args.save_warm_start:
    save(args.save_warm_start)
  record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
  return record


def _pretrain(data, encoder_config, pretrain_config, item_vectors, exclude: bool) -> Pretrained:
  """Pre-trains on ``data``'s training split (every user's); ``exclude``: the fine-tuning
  RetrievalConfig's exclude_untrained_items."""
  start = time.perf_counter()
  model, history = pretrain(data.files["train"], None, data_lib.SPEC, data.num_items,
                            encoder_config, pretrain_config, data.attributes,
                            item_vectors=item_vectors, exclude_untrained_items=exclude)
  return Pretrained.of(model, {"pretrain_config": pretrain_config.to_dict(),
                               "encoder_config": encoder_config.to_dict(),
                               "pretrain_seconds": round(time.perf_counter() - start, 1),
                               "pretrain_history": history})


# ----------------------------------------------------------------------------
# The driver.


def epochs_to_reach(history: Dict[str, List[float]], fraction: float = 0.95,
                    best: Optional[float] = None) -> Optional[int]:
  """The first fine-tuning epoch whose validation NDCG@10 reaches ``fraction`` of
  ``best`` (default: the run's own best), None if none does: how much of the
  fine-tuning budget a warm start saves."""
  values = history[ranking_validation.ndcg_name(10)]
  target = fraction * (max(values) if best is None else best)
  return next((epoch for epoch, value in enumerate(values, start=1) if value >= target), None)


def aggregate(runs: List[dict]) -> Dict[str, dict]:
  """Per variant: mean and sample std over seeds of the test metrics and speed."""
  by_variant: Dict[str, List[dict]] = {}
  for run in runs:
    by_variant.setdefault(run["variant"], []).append(run)
  summary = {}
  for variant, group in by_variant.items():
    row = {"seeds": [r["seed"] for r in group]}
    for key in ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR"):
      values = np.asarray([r["test"][key] for r in group])
      row[key] = {"mean": float(values.mean()),
                  "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    for key in ("median_epoch_seconds", "train_predictions_per_second", "peak_rss_mb",
                "finetune_seconds", "best_epoch"):
      row[key] = float(np.median([r[key] for r in group]))
    row["pretrain_seconds"] = float(np.median([r.get("pretrain_seconds", 0.0) for r in group]))
    # Runs recorded before the load was recorded say nothing: they count as shared.
    row["shared_cores"] = any(r.get("shared_cores", True) for r in group)
    if all(COLD_SLICES[0] in r.get("test_slices", {}) for r in group):
      for name in COLD_SLICES:
        for key in ("HR@10", "NDCG@10"):
          values = np.asarray([r["test_slices"][name].get(key, np.nan) for r in group])
          row[f"{name} {key}"] = {"mean": float(values.mean()),
                                  "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    row["epochs_to_95"] = float(np.median([epochs_to_reach(r["finetune_history"])
                                           for r in group]))
    summary[variant] = row
  return summary


def _cores(row: dict) -> str:
  """How a row's epochs were timed: "shared" (other work on the cores) or "alone"."""
  return "shared" if row.get("shared_cores", True) else "alone"


def _cell(stat: dict, seeds: int, digits: int = 4) -> str:
  """``mean ± std`` over several seeds (even when the std is 0), ``mean`` for one."""
  if seeds > 1:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
  return f"{stat['mean']:.{digits}f}"


def markdown(result: dict) -> str:
  """The readable table of a results.json."""
  summary, meta = result["summary"], result["meta"]
  lines = [f"Dataset **{meta['dataset']}** ({meta['num_users']} users, {meta['num_items']} "
           f"items); commit `{meta['commit']}`; {meta['machine']['cpu']}, "
           f"{meta['machine']['cores']} cores; {meta['date']}.", "",
           "| model | seeds | HR@10 | NDCG@10 | MRR | best epoch | epochs to 95% of best | "
           "s/epoch (median; cores alone or shared) | train predictions/s | pre-training s | "
           "peak RSS MB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for variant, row in summary.items():
    n = len(row["seeds"])
    lines.append(
        f"| {variant} | {n} | {_cell(row['HR@10'], n)} | {_cell(row['NDCG@10'], n)} | "
        f"{_cell(row['MRR'], n)} | {row['best_epoch']:.0f} | {row['epochs_to_95']:.0f} | "
        f"{row['median_epoch_seconds']:.1f} {_cores(row)} | "
        f"{row['train_predictions_per_second']:.0f} | {row['pretrain_seconds']:.0f} | "
        f"{row['peak_rss_mb']:.0f} |")
  cold = [f"{name} {key}" for name in COLD_SLICES for key in ("HR@10", "NDCG@10")]
  if any(cold[0] in row for row in summary.values()):
    lines += ["", "| model | " + " | ".join(cold) + " |", "|---|" + "---|" * len(cold)]
    lines += [f"| {variant} | " + " | ".join(_cell(row[c], len(row["seeds"])) for c in cold)
              + " |" for variant, row in summary.items() if cold[0] in row]
  for name, hr, ndcg in REFERENCE_RESULTS.get(meta["dataset"], []):
    lines.append(f"| {name} | | {hr:.4f} | "
                 f"{'' if ndcg is None else f'{ndcg:.4f}'} | | | | | | | |")
  return "\n".join(lines) + "\n"


def write_tables(result: dict, results: str, table: Callable[[dict], str]) -> str:
  """Writes ``result`` to ``<results>.json`` and ``table(result)`` to ``<results>.md``;
  returns the table."""
  os.makedirs(os.path.dirname(results) or ".", exist_ok=True)
  with open(results + ".json", "w") as f:
    json.dump(result, f, indent=1)
  text = table(result)
  with open(results + ".md", "w") as f:
    f.write(text)
  return text


def recipe_path(dataset: str) -> str:
  """The dataset's fine-tuning recipe file, configs/<dataset>.json, else configs/default.json."""
  path = os.path.join(RECIPES_DIR, f"{dataset}.json")
  if not os.path.exists(path):
    path = os.path.join(RECIPES_DIR, f"{DEFAULT_RECIPE}.json")
  return os.path.relpath(os.path.normpath(path))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="synthetic", choices=sorted(data_lib.DATASETS))
  parser.add_argument("--data-dir", default=None, help="dataset folder (default: ../shared/data/...)")
  parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                      help=f"comma-separated, of {list(VARIANTS)}")
  parser.add_argument("--seeds", type=int, default=3,
                      help=f"seeds for the headline variants {HEADLINE}")
  parser.add_argument("--ablation-seeds", type=int, default=1,
                      help="seeds for the other (ablation) variants")
  parser.add_argument("--finetune-epochs", type=int, default=200)
  parser.add_argument("--patience", type=int, default=5,
                      help="fine-tuning epochs without a validation NDCG@10 gain before stopping")
  parser.add_argument("--pretrain-epochs", type=int, default=10)
  parser.add_argument("--model-config", default=None,
                      help="JSON ModelConfig fields or a JSON file (seed and epochs are set per "
                           "run); default: the dataset's recipe configs/<dataset>.json, else "
                           "configs/default.json")
  parser.add_argument("--pretrain-config", default="{}", help="JSON PretrainConfig fields")
  parser.add_argument("--retrieval-config", default=DEFAULT_RETRIEVAL_CONFIG,
                      help="JSON RetrievalConfig fields")
  parser.add_argument("--auxiliary-config", default=DEFAULT_AUXILIARY,
                      help="JSON PretrainConfig fields of the auxiliary objectives of the "
                           "*_ssl variants (weights default to 0)")
  parser.add_argument("--cold-item-fraction", type=float, default=0.0,
                      help="hold this fraction of the items out of training as the pipeline "
                           "does (--cold-item-fraction there) and report the test users whose "
                           "target is one apart (default 0: off)")
  parser.add_argument("--cold-item-seed", type=int, default=0)
  parser.add_argument("--item-vectors", default=None,
                      help="item vectors file (python -m pipeline.embed_items) for a model "
                           "config with item_representation text or id+text")
  parser.add_argument("--train-user-fraction", type=float, default=1.0,
                      help="train on this seeded fraction of the users (the run's seed); "
                           "every user is still validated and tested")
  parser.add_argument("--warm-start-from", default=None,
                      help="start the encoder from the weights --save-warm-start wrote "
                           "(trainer.warm_start: items matched by raw id, text adaptor kept)")
  add_warm_start_options(parser, "warm-start")
  parser.add_argument("--zero-cold-ids", action="store_true",
                      help="test with the held-out items' id embeddings at zero, as a "
                           "catalogue refresh adds them (their training only pushed them down "
                           "as negatives)")
  parser.add_argument("--save-warm-start", default=None,
                      help="write the fine-tuned encoder for a later --warm-start-from")
  parser.add_argument("--save-warm-start-each-epoch", action="store_true",
                      help="also write the weights after every epoch, each for a later "
                           "--warm-start-epoch (epoch_model: <folder>/../epoch-N/serving)")
  parser.add_argument("--save-pretrained", default=None,
                      help="(one run) write the pre-trained weights fine-tuning takes to this "
                           "folder for a later --pretrained-from")
  parser.add_argument("--pretrained-from", default=None,
                      help="(one run) fine-tune from the weights --save-pretrained wrote "
                           "instead of pre-training (same pre-training settings and seed)")
  parser.add_argument("--drop-last-items", type=int, default=0,
                      help="every user's sequence without its last N items (bench.quality."
                           "data.drop_last_items; the nightly benchmark's day 1)")
  parser.add_argument("--out-dir", default=None, help="default: outputs/bench/quality/<dataset>")
  parser.add_argument("--work-dir", default=None, help="default: <out-dir>/work")
  parser.add_argument("--jobs", type=int, default=1,
                      help="training runs (child processes) at once; each uses every core "
                           "unless TF_NUM_INTRAOP_THREADS says otherwise")
  parser.add_argument("--no-run", action="store_true",
                      help="train nothing: write the table of the runs already recorded "
                           "for these settings (a partial benchmark)")
  # Internal: run one (variant, seed) and write its record to --record.
  parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)
  parser.add_argument("--record", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.out_dir = args.out_dir or os.path.join("outputs", "bench", "quality", args.dataset)
  args.work_dir = args.work_dir or os.path.join(args.out_dir, "work")
  if args.model_config is None:
    args.model_config = recipe_path(args.dataset)
  unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
  if unknown:
    parser.error(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
  if args.save_warm_start_each_epoch and not args.save_warm_start:
    parser.error("--save-warm-start-each-epoch needs --save-warm-start")
  if args.warm_start_epoch and not args.warm_start_from:
    parser.error("--warm-start-epoch needs --warm-start-from")
  if args.jobs < 1:
    parser.error(f"--jobs must be >= 1; got {args.jobs}")
  return args


def _child_argv(args, variant: str, seed: int, record: str) -> List[str]:
  return [sys.executable, "-m", "bench.quality.run", "--dataset", args.dataset,
          *(["--data-dir", args.data_dir] if args.data_dir else []),
          "--finetune-epochs", str(args.finetune_epochs), "--patience", str(args.patience),
          "--pretrain-epochs", str(args.pretrain_epochs), "--model-config", args.model_config,
          "--pretrain-config", args.pretrain_config,
          "--retrieval-config", args.retrieval_config,
          "--auxiliary-config", args.auxiliary_config, "--out-dir", args.out_dir,
          "--work-dir", args.work_dir, "--variant", variant, "--seed", str(seed),
          "--record", record, "--cold-item-fraction", str(args.cold_item_fraction),
          "--cold-item-seed", str(args.cold_item_seed), *_text_argv(args)]


def _text_argv(args) -> List[str]:
  """The item-text, transfer, warm-start and day-1 options of a child, those that are set."""
  options = {"--item-vectors": args.item_vectors, "--warm-start-from": args.warm_start_from,
             "--save-warm-start": args.save_warm_start}
  argv = [part for flag, value in options.items() if value for part in (flag, value)]
  if args.train_user_fraction < 1:
    argv += ["--train-user-fraction", str(args.train_user_fraction)]
  if args.zero_cold_ids:
    argv += ["--zero-cold-ids"]
  if args.drop_last_items:
    argv += ["--drop-last-items", str(args.drop_last_items)]
  if args.save_warm_start_each_epoch:
    argv += ["--save-warm-start-each-epoch"]
  argv += warm_start_argv(warm_start_settings(args, "warm-start"))
  return argv


# The warm-start options of a run (with --warm-start-from; trainer.warm_start), each
# "--warm-start-<name>" here and "--warm-<name>" in bench.quality.nightly:
# name -> (argparse keywords, the word naming it in a nightly row).
WARM_START_OPTIONS = {
    "shrink": ({"type": float, "default": None,
                "help": "start from shrink * saved + (1 - shrink) * fresh initialisation "
                        "(shrink and perturb; 1 = the saved weights; default: the recipe's "
                        "warm_start.shrink)"}, "shrink"),
    "keep": ({"default": warm_start.KEEP_ALL, "choices": warm_start.KEEP_CHOICES,
              "help": "copy every saved weight (all) or only the item and attribute "
                      "embeddings (items; the sequence model starts fresh)"}, "keep"),
    "warmup-steps": ({"type": int, "default": 0,
                      "help": "raise the learning rate linearly over this many batches "
                              "(trainer.warm_start.WarmSchedule)"}, "warmup"),
    "decay-epochs": ({"type": int, "default": 0,
                      "help": "cosine-decay the learning rate over this many epochs, then "
                              "stop (0: constant, early stopping decides)"}, "cosine"),
    "optimizer": ({"action": argparse.BooleanOptionalAction, "default": None,
                   "help": "carry the saved run's Adam moments and step count over too, or "
                           "not (default: the recipe's warm_start.carry_optimizer)"}, "adam"),
    "newest-repeats": ({"type": int, "default": 0,
                        "help": "each epoch, also train this many more times on each "
                                "training sequence's newest transition, its batches drawn "
                                "at random between the every-prefix ones (with_newest)"},
                       "newest"),
    "epoch": ({"type": int, "default": 0,
               "help": "start from the saved run's weights after this epoch (saved with "
                       "--save-warm-start-each-epoch) instead of its best epoch's"}, "epoch"),
    "targets": ({"default": None, "choices": list(typing.get_args(Targets)),
                 "help": "train the warm run on these RetrievalConfig.targets instead of "
                         "the retrieval config's (last_position: each training sequence's "
                         "newest transition only)"}, "targets"),
}


# The options that set a WarmStartConfig field of the run's ModelConfig (run_model_config),
# the others being the benchmark's own.
WARM_START_FIELDS = {"warmup-steps": "warm_warmup_steps", "decay-epochs": "warm_decay_epochs",
                     "optimizer": "carry_optimizer", "shrink": "shrink"}


def add_warm_start_options(parser: argparse.ArgumentParser, prefix: str) -> None:
  """Adds ``--<prefix>-<name>`` for each of ``WARM_START_OPTIONS``."""
  for name, (options, _) in WARM_START_OPTIONS.items():
    parser.add_argument(f"--{prefix}-{name}", **options)


def warm_start_settings(args, prefix: str) -> Dict[str, object]:
  """The warm-start options ``args`` (parsed with ``prefix``) set away from their defaults."""
  values = {name: getattr(args, f"{prefix}-{name}".replace("-", "_"))
            for name in WARM_START_OPTIONS}
  return {name: value for name, value in values.items()
          if value != WARM_START_OPTIONS[name][0]["default"]}


def warm_start_argv(settings: Dict[str, object]) -> List[str]:
  """run.py's ``--warm-start-*`` options of ``warm_start_settings``."""
  return [part for name, value in settings.items()
          for part in ([f"--warm-start-{name}"] if value is True else
                       [f"--no-warm-start-{name}"] if value is False else
                       [f"--warm-start-{name}", str(value)])]


def _cold_args(args) -> Dict[str, object]:
  """The data options of ``data_lib.prepare`` besides the dataset's name and folder."""
  return {"cold_item_fraction": args.cold_item_fraction, "cold_item_seed": args.cold_item_seed,
          "drop_last": args.drop_last_items}


def _model_key(config, warm: bool = True) -> dict:
  """A ModelConfig's dict without the ``LATER_FIELDS`` at the values runs had before
  those fields existed, so those runs keep their key, and, unless ``warm`` (the run
  starts from a saved model), without the ``WARM_ONLY_FIELDS``."""
  values = config.to_dict()
  for section, fields in LATER_FIELDS.items():
    for name, before in fields.items():
      if values[section][name] == before:
        del values[section][name]
  if not warm:
    for name in WARM_ONLY_FIELDS:
      values["warm_start"].pop(name, None)
  return values


def leaves(values: dict) -> dict:
  """A config dict's leaf fields by name, sections flattened (records of older commits
  were flat)."""
  out = {}
  for key, value in values.items():
    out.update(leaves(value) if isinstance(value, dict) else {key: value})
  return out


def non_default(config) -> dict:
  """A config's dict without the fields at their dataclass defaults (sections likewise,
  against the default config's own section)."""
  def changed(values: dict, defaults: dict) -> dict:
    out = {}
    for key, value in values.items():
      if isinstance(value, dict) and isinstance(defaults.get(key), dict):
        value = changed(value, defaults[key])
        if value:
          out[key] = value
      elif key not in defaults or value != defaults[key]:
        out[key] = value
    return out
  return changed(config.to_dict(), type(config)().to_dict())


def _without(variant: str) -> Dict[str, float]:
  """The objective weight an ablation variant sets to 0 ({} for the others)."""
  without = VARIANTS[variant].without
  return {objectives.weight_field(without): 0.0} if without else {}


def pretrain_config_of(args, variant: str, seed: int) -> PretrainConfig:
  """The PretrainConfig a run of ``variant`` at ``seed`` pre-trains with (before the
  attribute objective is dropped on a dataset without attributes, which the dataset
  decides)."""
  config = PretrainConfig.from_dict(
      {**load_json_object(args.pretrain_config, "pretrain config"), **_without(variant)})
  config.schedule = dataclasses.replace(config.schedule, seed=seed, epochs=args.pretrain_epochs)
  return config


def pretrained_key(args, variant: str, seed: int) -> str:
  """Short hash of what a pre-training of ``variant`` at ``seed`` depends on, to find a
  saved one (--save-pretrained) again: the data and its options, the encoder config,
  the pre-training config (with its seed and epochs) and, for text items, the item
  vectors and whether untrained items are excluded. Fine-tuning settings (schedule,
  patience, retrieval config, share of users) are not in it, and config fields at
  their dataclass defaults are left out, so a field added with a default that changes
  nothing keeps the key; a changed default is caught on loading instead
  (``Pretrained.differences`` against the full configs saved with the weights)."""
  encoder = load_model_config(args.model_config).encoder
  settings = {"data": [args.dataset, args.data_dir, _cold_args(args)],
              "encoder": non_default(encoder),
              "pretrain": non_default(pretrain_config_of(args, variant, seed))}
  if encoder.uses_item_text:
    settings["text"] = [args.item_vectors, RetrievalConfig.from_dict(
        load_json_object(args.retrieval_config)).exclude_untrained_items]
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def _settings_key(args, variant: str) -> str:
  """Short hash of the settings a run of ``variant`` depends on: a finished run is
  reused only when they are the same (so an interrupted benchmark resumes where it
  stopped, and changing the pre-training recipe keeps the fine-tune-only runs). JSON
  settings count by content, so editing a recipe file is a change."""
  settings = [args.dataset, args.data_dir, args.finetune_epochs, args.patience,
              _model_key(load_model_config(args.model_config), bool(args.warm_start_from)),
              load_json_object(args.retrieval_config)]
  if VARIANTS[variant].pretrain:
    settings += [args.pretrain_epochs, load_json_object(args.pretrain_config)]
  if VARIANTS[variant].auxiliary:
    settings += [load_json_object(args.auxiliary_config)]
  if args.cold_item_fraction > 0:   # runs recorded before the option keep their key
    settings += [{k: v for k, v in _cold_args(args).items() if k != "drop_last"}]
  if _text_argv(args):              # so do runs without item text or transfer
    settings += [_text_argv(args)]
  if VARIANTS[variant].pretrain and args.train_user_fraction < 1:
    settings += ["pretrain_on_all_users"]   # runs from before pre-trained on the sample
  if args.item_vectors and RetrievalConfig.from_dict(
      load_json_object(args.retrieval_config)).exclude_untrained_items:
    settings += ["exclude_untrained_items"]   # text runs from before the exclusion differ
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def prepare_once(args) -> data_lib.BenchData:
  """The run's data, prepared in this process so the children find the files (and a
  missing dataset fails early)."""
  os.makedirs(os.path.join(args.out_dir, "runs"), exist_ok=True)
  return data_lib.prepare(args.dataset, os.path.join(args.work_dir, "data"), args.data_dir,
                          **_cold_args(args))


def run_or_reuse(args, variant: str, seed: int) -> Optional[dict]:
  """The record of ``variant`` at ``seed``: reused when recorded with the same settings,
  else trained in a child process; None under ``--no-run`` when not recorded yet."""
  record = os.path.join(args.out_dir, "runs",
                        f"{variant}-seed{seed}-{_settings_key(args, variant)}.json")
  if os.path.exists(record):
    logging.info("%s seed %d: reusing %s", variant, seed, record)
  elif args.no_run:
    logging.info("%s seed %d: not run yet, left out (--no-run)", variant, seed)
    return None
  else:
    logging.info("%s seed %d: running", variant, seed)
    subprocess.run(_child_argv(args, variant, seed, record + ".tmp"), check=True)
    os.replace(record + ".tmp", record)
  with open(record) as f:
    result = json.load(f)
  logging.info("%s seed %d: test %s", variant, seed,
               {k: round(v, 4) for k, v in result["test"].items() if k in ("HR@10", "NDCG@10")})
  return result


def main(argv=None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  if args.variant:   # child
    record = run_one(args)
    with open(args.record, "w") as f:
      json.dump(record, f, indent=1)
    return 0

  data = prepare_once(args)
  tasks = [(variant, seed) for variant in args.variants.split(",")
           for seed in range(1, (args.seeds if variant in HEADLINE else args.ablation_seeds) + 1)]
  with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
    runs = [record for record in pool.map(lambda task: run_or_reuse(args, *task), tasks)
            if record is not None]
  result = {
      "meta": {"dataset": args.dataset, "num_users": data.num_users,
               "num_items": data.num_items, "commit": _commit(), "machine": _machine(),
               "date": datetime.date.today().isoformat(), "args": vars(args)},
      "summary": aggregate(runs), "runs": runs}
  with open(os.path.join(args.out_dir, "results.json"), "w") as f:
    json.dump(result, f, indent=1)
  table = markdown(result)
  with open(os.path.join(args.out_dir, "results.md"), "w") as f:
    f.write(table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
