"""Named defaults of the pipeline in one place: one config object, nested by concern.

Every runner (local, Kubeflow V2) takes the flags of ``add_flags``, builds its
``PipelineConfig`` with ``from_flags`` and hands it to ``pipeline.create_pipeline``.
"""

import argparse
import dataclasses
import os
from typing import Any, Dict, List, Literal, Optional, Tuple

from serving.contract import MODEL_NAME
from trainer.config import ModelConfig
from trainer.config import RetrievalConfig
from trainer.config import WarmStartConfig
from trainer.config import load_json_object
from trainer.config import load_model_config
from trainer.json_config import JsonConfig
from trainer.pretraining.config import PretrainConfig
from trainer.training_schedule import TrainingSchedule

PIPELINE_NAME = "seqrec"
DATA_DIR = "data"   # the canonical copy of the input, under a run's output root


def data_root_of(output_root: str) -> str:
  """Where runs with this output root keep the canonical data (``<output_root>/data``)."""
  return os.path.join(output_root, DATA_DIR)


@dataclasses.dataclass
class SequenceConfig:
  """How per-user sequences are built from the log."""
  min_interactions: int = 5      # users with fewer events are dropped (>= 3)
  max_history_length: int = 0    # 0 keeps every event; else the most recent N
  # Cold-item evaluation: this seeded fraction of the items is held out of training
  # entirely and the evaluator reports the test users whose target is one apart; 0: off.
  cold_item_fraction: float = 0.0
  cold_item_seed: int = 0


@dataclasses.dataclass
class EvaluationConfig:
  """Full-ranking evaluation and the blessing that gates the push."""
  eval_split: str = "test"
  ks: Tuple[int, ...] = (5, 10, 20)
  gating_metric: str = "NDCG@10"
  min_value: float = 0.0             # blessed only at or above this
  must_beat_popularity: bool = True  # and above the popularity baseline
  # With a served (latest blessed) model: blessed only if not worse than it by
  # more than this fraction of its gating metric.
  baseline_tolerance: float = 0.0
  # [{"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}]: blessed
  # only if no such slice drops more than that below the baseline (else popularity).
  slice_gates: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DriftConfig(JsonConfig):
  """Nightly runs (span_window > 0): how far the newest span may move from the previous one.

  A span beyond any threshold stops the run before training and pushes nothing.
  """
  max_item_distance: float = 0.3          # L-infinity distance of item-id frequencies
  max_events_per_user_ratio: float = 2.0  # events per user may grow or shrink this factor
  # A span named YYYYMMDD holds that day's events (UTC), give or take this much.
  day_tolerance_hours: float = 14.0

  def validate(self) -> None:
    if not 0 < self.max_item_distance <= 1:
      raise ValueError(f"DriftConfig.max_item_distance must be in (0, 1]; "
                       f"got {self.max_item_distance}")
    if self.max_events_per_user_ratio < 1:
      raise ValueError(f"DriftConfig.max_events_per_user_ratio must be >= 1; "
                       f"got {self.max_events_per_user_ratio}")
    if self.day_tolerance_hours < 0:
      raise ValueError(f"DriftConfig.day_tolerance_hours must be >= 0; "
                       f"got {self.day_tolerance_hours}")


@dataclasses.dataclass
class BulkRecommendConfig(JsonConfig):
  """The optional step after the push: top-k for every user as files (BulkRecommender)."""
  k: int = 10
  output_format: Literal["parquet", "csv"] = "parquet"
  num_shards: int = 0   # 0: the runner decides
  # The signature and its other inputs for every user (global rules; with ``recommend``
  # those not given mean no rule); per-user rules, JSON Lines (docs/serving.md,
  # "Per-user rules in bulk runs"), a path the executor can read. None: the defaults
  # (serving_default, or recommend when a rules file is given).
  signature: Optional[str] = None
  extra_inputs: Optional[Dict[str, Any]] = None
  rules_file: Optional[str] = None

  def validate(self) -> None:
    if self.extra_inputs is not None and not isinstance(self.extra_inputs, dict):
      raise ValueError(f"BulkRecommendConfig.extra_inputs must be a JSON object; "
                       f"got {self.extra_inputs!r}")
    for name in ("signature", "rules_file"):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"BulkRecommendConfig.{name} must be a non-empty string; got {value!r}")
    if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
      raise ValueError(f"BulkRecommendConfig.k must be a positive integer; got {self.k!r}")
    if isinstance(self.num_shards, bool) or not isinstance(self.num_shards, int) \
        or self.num_shards < 0:
      raise ValueError(f"BulkRecommendConfig.num_shards must be >= 0; got {self.num_shards!r}")


@dataclasses.dataclass
class PipelineConfig:
  """Everything that varies between runs of the pipeline."""
  data_root: str                     # canonical data: interactions/ [and items/]
  output_root: str = "outputs"       # pipeline root, metadata and serving live below
  pipeline_name: str = PIPELINE_NAME
  model_name: str = MODEL_NAME
  sequence: SequenceConfig = dataclasses.field(default_factory=SequenceConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  # Self-supervised pre-training step before fine-tuning; None skips it (the
  # fine-tuning then warm-starts from the latest blessed model, if any).
  pretrain: Optional[PretrainConfig] = dataclasses.field(default_factory=PretrainConfig)
  retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
  evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
  schema_path: Optional[str] = None  # curated schema for ExampleValidator (else inferred)
  beam_pipeline_args: List[str] = dataclasses.field(default_factory=lambda: [
      "--direct_running_mode=in_memory", "--direct_num_workers=1"])
  enable_cache: bool = False
  # Daily partitions: 0 reads every file under <data_root>/interactions; N > 0
  # reads <data_root>/interactions/span-{SPAN}/ and trains on the last N spans.
  span_window: int = 0
  # Nightly runs: the drift gate between the newest span and the previous one; None: off.
  drift: Optional[DriftConfig] = dataclasses.field(default_factory=DriftConfig)
  # Warm-start training from, and compare against, the latest blessed model.
  use_latest_blessed_model: bool = True
  # Whether an item table sits under <data_root>/items. None: look (local roots
  # only); remote roots (gs://, s3://) must say so, as the runner cannot look.
  use_item_table: Optional[bool] = None
  # Folder TF Serving watches (model folders below it); None: <output_root>/serving.
  serving_root: Optional[str] = None
  # Item vectors file (python -m pipeline.embed_items) for text item representations
  # (ModelConfig item_representation "text" / "id+text"); on a cluster, a path the pods read.
  item_vectors: Optional[str] = None
  # After a push, top-k for every user of the test split as files; None: off.
  bulk_recommendations: Optional[BulkRecommendConfig] = None

  def __post_init__(self):
    if self.model.encoder.uses_item_text and not self.item_vectors:
      raise ValueError(f"item_representation {self.model.encoder.item_representation!r} needs "
                       "item vectors: --item-vectors PATH (python -m pipeline.embed_items "
                       "writes one) or, locally, --embed-items")

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_root, "tfx", self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_root, "metadata", self.pipeline_name, "metadata.db")

  @property
  def serving_model_dir(self) -> str:
    """``<serving_root>/<model_name>``: TF Serving's model base path."""
    return os.path.join(self.serving_root or os.path.join(self.output_root, "serving"),
                        self.model_name)

  @property
  def interactions_root(self) -> str:
    return os.path.join(self.data_root, "interactions")

  @property
  def items_root(self) -> str:
    return os.path.join(self.data_root, "items")

  @property
  def has_item_table(self) -> bool:
    if self.use_item_table is not None:
      return self.use_item_table
    if "://" in self.data_root:
      raise ValueError(f"data_root {self.data_root} is remote: set use_item_table "
                       "to say whether <data_root>/items holds an item table")
    return os.path.isdir(self.items_root) and bool(os.listdir(self.items_root))


OFF = "off"   # the flag value that switches an optional step off
NO_PRETRAINING = NO_DRIFT_CHECK = OFF
ON = "on"     # the flag value that switches an optional step on with its defaults


def add_flags(parser: argparse.ArgumentParser) -> None:
  """The flags every runner takes; ``from_flags`` reads them."""
  parser.add_argument("--pipeline-name", default=None,
                      help=f"default: {PIPELINE_NAME} (local runs: {PIPELINE_NAME}-<dataset>)")
  parser.add_argument("--model-config", default=None,
                      help="JSON object (or path to a JSON file, e.g. configs/beauty.json) of "
                           "ModelConfig fields: encoder shape and fine-tuning schedule")
  parser.add_argument("--pretrain-config", default=None,
                      help="JSON object (or file) overriding PretrainConfig fields, or "
                           f"'{NO_PRETRAINING}' to skip self-supervised pre-training")
  parser.add_argument("--retrieval-config", default=None,
                      help="JSON object (or file) overriding RetrievalConfig fields "
                           "(fine-tuning loss, negatives, candidate features)")
  parser.add_argument("--item-vectors", default=None,
                      help="item vectors file (python -m pipeline.embed_items) for text item "
                           "representations (model config item_representation text / id+text)")
  parser.add_argument("--epochs", type=int, default=None,
                      help="fine-tuning epochs (overrides the model config's)")
  parser.add_argument("--min-interactions", type=int, default=None)
  parser.add_argument("--max-history-length", type=int, default=None)
  parser.add_argument("--cold-item-fraction", type=float, default=None,
                      help="hold this fraction of the items out of training (seeded, by id) "
                           "and report the test users whose target is one as the cold-item "
                           "slice (default 0: off)")
  parser.add_argument("--cold-item-seed", type=int, default=None,
                      help="which items --cold-item-fraction holds out (default 0)")
  parser.add_argument("--min-ndcg", type=float, default=None,
                      help="blessing threshold on NDCG@10 (default 0)")
  parser.add_argument("--schema", default=None,
                      help="curated schema.pbtxt for ExampleValidator (on a cluster: a path "
                           "the pods can read)")
  parser.add_argument("--beam-arg", action="append", default=None,
                      help="Beam pipeline arg, repeatable; replaces the in-memory DirectRunner "
                           "defaults (e.g. --beam-arg=--direct_num_workers=2, "
                           "--beam-arg=--runner=DataflowRunner)")
  parser.add_argument("--drift-config", default=None,
                      help="JSON object (or file) overriding DriftConfig fields, the nightly "
                           "drift gate between spans, or "
                           f"'{NO_DRIFT_CHECK}' to train on any span")
  parser.add_argument("--bulk-recommendations", default=None, metavar="JSON|on",
                      help="after a push, write top-k for every user as files (a "
                           "BulkRecommender step): 'on' for the defaults, or a JSON object (or "
                           "file) of BulkRecommendConfig fields, e.g. '{\"k\": 20, "
                           "\"output_format\": \"csv\"}'; off unless given")
  parser.add_argument("--enable-cache", action="store_true",
                      help="reuse the outputs of steps whose inputs did not change")


def _given(**values) -> dict:
  """The keyword arguments whose value is not None (a flag left out keeps the default)."""
  return {k: v for k, v in values.items() if v is not None}


def _config_or_off(flag: Optional[str], config_type: type, what: str) -> Optional[JsonConfig]:
  """None for "off", else the config of the flag's JSON (the defaults without a flag)."""
  if flag == OFF:
    return None
  return config_type.from_dict(load_json_object(flag, what))


def _bulk_config(flag: Optional[str]) -> Optional[BulkRecommendConfig]:
  """None without the flag; the defaults for "on"; else the flag's JSON."""
  if flag is None:
    return None
  return BulkRecommendConfig.from_dict(
      {} if flag == ON else load_json_object(flag, "bulk recommendations config"))


def from_flags(args: argparse.Namespace, data_root: str, output_root: str,
               default_pipeline_name: str = PIPELINE_NAME, **settings) -> PipelineConfig:
  """The PipelineConfig of the flags ``add_flags`` defined, for data and outputs at these roots.

  ``settings``: further PipelineConfig fields the runner decides itself (they win
  over the flags). A bad JSON config raises ValueError naming the field.
  """
  model = load_model_config(args.model_config)
  if args.epochs is not None:
    model.schedule = dataclasses.replace(model.schedule, epochs=args.epochs)
  values = dict(
      data_root=data_root, output_root=output_root,
      pipeline_name=args.pipeline_name or default_pipeline_name,
      sequence=SequenceConfig(**_given(min_interactions=args.min_interactions,
                                       max_history_length=args.max_history_length,
                                       cold_item_fraction=args.cold_item_fraction,
                                       cold_item_seed=args.cold_item_seed)),
      model=model,
      drift=_config_or_off(args.drift_config, DriftConfig, "drift config"),
      pretrain=_config_or_off(args.pretrain_config, PretrainConfig, "pretrain config"),
      retrieval=RetrievalConfig.from_dict(
          load_json_object(args.retrieval_config, "retrieval config")),
      evaluation=EvaluationConfig(**_given(min_value=args.min_ndcg)),
      schema_path=args.schema, enable_cache=args.enable_cache, item_vectors=args.item_vectors,
      bulk_recommendations=_bulk_config(args.bulk_recommendations),
      **_given(beam_pipeline_args=args.beam_arg))
  values.update(settings)
  return PipelineConfig(**values)


def _schedule(schedule: TrainingSchedule) -> str:
  return (f"{schedule.epochs} epoch{'s' if schedule.epochs != 1 else ''}, batch "
          f"{schedule.batch_size}, learning rate {schedule.learning_rate:g}, seed {schedule.seed}")


def _warm_start(warm: WarmStartConfig, schedule: TrainingSchedule) -> str:
  """``from the served model: learning rate 0.002, cosine decay over 5 epochs, Adam's
  state carried over, weights shrunk to 0.7``."""
  parts = [f"learning rate {warm.rate(schedule.learning_rate):g}"]
  if warm.warm_warmup_steps:
    parts.append(f"warm-up over {warm.warm_warmup_steps} batches")
  if warm.warm_decay_epochs:
    parts.append(f"cosine decay over {warm.warm_decay_epochs} epochs")
  if warm.carry_optimizer:
    parts.append("Adam's state carried over")
  if warm.shrink < 1:
    parts.append(f"weights shrunk to {warm.shrink:g}")
  return "from the served model: " + ", ".join(parts)


def _objectives(pretrain: PretrainConfig) -> str:
  """``objectives masked_item 1, contrastive 0.1``: the weighted ones of a PretrainConfig."""
  weights = {f.name[:-len("_weight")]: getattr(pretrain, f.name)
             for f in dataclasses.fields(pretrain) if f.name.endswith("_weight")}
  return "objectives " + ", ".join(f"{name} {w:g}" for name, w in weights.items() if w > 0)


def describe(config: PipelineConfig) -> List[str]:
  """A few readable lines of what a run trains (the whole config is its JSON)."""
  encoder, model, retrieval = config.model.encoder, config.model, config.retrieval
  shape = (f"Encoder: {encoder.num_blocks} blocks x {encoder.num_heads} heads, "
           f"d = {encoder.embedding_dim}, feed-forward {encoder.ff_dim}, history "
           f"{encoder.max_seq_len} items, {encoder.attention} attention, "
           f"dropout {encoder.dropout:g}")
  if encoder.filter_weight:
    shape += f", frequency filter {encoder.filter_weight:g} ({encoder.frequency_bins} bins)"
  if encoder.uses_item_text:
    shape += f", {encoder.item_representation} items ({encoder.adaptor_experts}-expert adaptor)"
  fine_tuning = (f"Fine-tuning: {_schedule(model.schedule)}; {retrieval.loss} on "
                 f"{retrieval.targets}")
  if retrieval.auxiliary_config() is not None:
    fine_tuning += f" + {_objectives(retrieval.auxiliary_config())}"
  if model.early_stopping_patience:
    fine_tuning += f", early stopping after {model.early_stopping_patience} epochs"
  # With pre-training, fine-tuning starts from its encoder and run_fn keeps the schedule.
  if model.warm_start != WarmStartConfig() and config.pretrain is None:
    fine_tuning += f"; {_warm_start(model.warm_start, model.schedule)}"
  pretraining = "Pre-training: off"
  if config.pretrain is not None:
    pretraining = (f"Pre-training: {_schedule(config.pretrain.schedule)}; "
                   f"{_objectives(config.pretrain)}")
  return [shape, fine_tuning, pretraining]
