"""The pipeline definition: one factory, components in data-flow order.

Nothing here knows which orchestrator runs it; see ``local_runner`` and
``kubeflow_v2_runner``.
"""

import os
from typing import Optional

from tfx import v1 as tfx
from ml_metadata.proto import metadata_store_pb2

from components.bulk_recommender.component import BulkRecommender
from components.drift_validator.component import DriftValidator
from components.drift_validator.resolver import PreviousSpanStrategy
from components.pusher.component import AtomicPusher
from components.ranking_evaluator.component import RankingEvaluator
from components.sequence_builder import forgotten_users
from components.sequence_builder.component import SequenceBuilder
from pipeline.configs import PipelineConfig
from pipeline.ingest.example_gen import canonical_example_gen
from trainer import features
from trainer.config import ITEM_VECTORS_KEY
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import PRETRAIN_CONFIG_KEY
from trainer.config import RETRIEVAL_CONFIG_KEY

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
PRETRAIN_RUN_FN = "trainer.pretrain_run_fn.run_fn"
RUN_FN = "trainer.run_fn.run_fn"
SPAN_FOLDER = "span-{SPAN}"
# Not "CsvExampleGen": span windows must not gather the Examples it wrote with
# inferred types (integer ids, float32 timestamps).
LOG_EXAMPLE_GEN = "LogExampleGen"
PRETRAIN_TRAINER = "PretrainTrainer"
TRAINER = "Trainer"   # TFX's default id of the (fine-tuning) Trainer


def _trainer(run_fn: str, base_model: Optional[tfx.dsl.Channel],
             transform: tfx.components.Transform, custom_config: dict) -> tfx.components.Trainer:
  """A Trainer of ``run_fn`` on the transformed train split, evaluated on the eval split."""
  return tfx.components.Trainer(
      run_fn=run_fn,
      base_model=base_model,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
      eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
      custom_config=custom_config)


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> tfx.dsl.Pipeline:
  """Builds the TFX pipeline for ``config``."""
  components = []

  # Interaction log (and item table, if any) into tf.Examples, with declared
  # feature types (ids stay strings, timestamps int64). With daily spans, each
  # run ingests the newest span and a resolver gathers the last N.
  span_input = tfx.proto.Input(splits=[
      tfx.proto.Input.Split(name="log", pattern=f"{SPAN_FOLDER}/*")])
  example_gen = canonical_example_gen(
      config.interactions_root, span_input if config.span_window else None
  ).with_id(LOG_EXAMPLE_GEN)
  if config.span_window:
    span_window = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
        config={"range_config": tfx.proto.RangeConfig(
            rolling_range=tfx.proto.RollingRange(num_spans=config.span_window))},
        examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                 producer_component_id=example_gen.id),
    ).with_id("span_window_resolver")
    log_examples = span_window.outputs["examples"]
    components += [example_gen, span_window]
  else:
    log_examples = example_gen.outputs["examples"]
    components.append(example_gen)
  item_gen = None
  if config.has_item_table:
    item_gen = canonical_example_gen(config.items_root).with_id("ItemExampleGen")
    components.append(item_gen)

  # Statistics, schema (curated if given, else inferred) and anomalies of the log.
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
  if config.schema_path:
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_path)
  else:
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
  components += [statistics_gen, schema_gen, example_validator]

  # Nightly: the newest span against the previous span's statistics (found through
  # lineage, hence after this run's StatisticsGen); the SequenceBuilder stops on drift.
  drift_validator = None
  if config.span_window and config.drift is not None:
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=PreviousSpanStrategy,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id=statistics_gen.id),
    ).with_id("previous_span_statistics_resolver")
    previous_statistics.add_upstream_node(statistics_gen)
    drift_validator = DriftValidator(
        statistics=statistics_gen.outputs["statistics"],
        examples=example_gen.outputs["examples"],
        previous_statistics=previous_statistics.outputs["statistics"],
        **config.drift.to_dict())
    components += [previous_statistics, drift_validator]

  # Per-user, time-ordered sequences with leave-one-out splits; stops on anomalies
  # and leaves out the users of the forgotten-users ledger (python -m pipeline.forget_user).
  sequence_builder = SequenceBuilder(
      examples=log_examples,
      items=item_gen.outputs["examples"] if item_gen else None,
      anomalies=example_validator.outputs["anomalies"],
      drift_anomalies=drift_validator.outputs["anomalies"] if drift_validator else None,
      min_interactions=config.sequence.min_interactions,
      max_history_length=config.sequence.max_history_length,
      forgotten_users=os.path.join(config.data_root, forgotten_users.LEDGER_FILE),
      cold_item_fraction=config.sequence.cold_item_fraction,
      cold_item_seed=config.sequence.cold_item_seed)
  components.append(sequence_builder)

  # Item and attribute vocabularies; the graph ships inside the served model.
  transform = tfx.components.Transform(
      examples=sequence_builder.outputs["output_examples"],
      schema=sequence_builder.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      splits_config=tfx.proto.SplitsConfig(
          analyze=[features.TRAIN_SPLIT, features.ITEMS_SPLIT],
          transform=list(features.ALL_SPLITS)))
  components.append(transform)

  # The model being served: warm start for training and baseline for the blessing.
  latest_blessed = None
  if config.use_latest_blessed_model:
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    components.append(latest_blessed)
  baseline = latest_blessed.outputs["model"] if latest_blessed else None

  model_config = config.model.to_dict()
  item_vectors = {ITEM_VECTORS_KEY: config.item_vectors} if config.item_vectors else {}

  # Self-supervised pre-training of the encoder on the unlabeled sequences
  # (continuing from the served model's encoder when there is one).
  warm_start_from = baseline
  if config.pretrain is not None:
    pretrainer = _trainer(
        PRETRAIN_RUN_FN, baseline, transform,
        {MODEL_CONFIG_KEY: model_config, **item_vectors,
         PRETRAIN_CONFIG_KEY: config.pretrain.to_dict(),
         # exclude_untrained_items applies to pre-training's catalogue softmax too
         RETRIEVAL_CONFIG_KEY: config.retrieval.to_dict()},
    ).with_id(PRETRAIN_TRAINER)
    components.append(pretrainer)
    warm_start_from = pretrainer.outputs["model"]

  # Retrieval fine-tuning (two-tower) from the pre-trained encoder.
  trainer = _trainer(
      RUN_FN, warm_start_from, transform,
      {MODEL_CONFIG_KEY: model_config, **item_vectors,
       RETRIEVAL_CONFIG_KEY: config.retrieval.to_dict()})
  components.append(trainer)

  # Full-ranking evaluation against the popularity (and, with item vectors, the
  # text-similarity) baseline, with the cold-item slice if items were held out;
  # decides the blessing.
  evaluator = RankingEvaluator(
      examples=sequence_builder.outputs["output_examples"],
      model=trainer.outputs["model"],
      baseline_model=baseline,
      baseline_tolerance=config.evaluation.baseline_tolerance,
      eval_split=config.evaluation.eval_split,
      ks=list(config.evaluation.ks),
      gating_metric=config.evaluation.gating_metric,
      min_value=config.evaluation.min_value,
      must_beat_popularity=int(config.evaluation.must_beat_popularity),
      slice_gates=config.evaluation.slice_gates,
      item_vectors=config.item_vectors)
  components.append(evaluator)

  # Only a blessed model lands in the folder TF Serving watches.
  pusher = AtomicPusher(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=config.serving_model_dir)))
  components.append(pusher)

  # Optional: top-k for every user from the model just pushed, as files (none if not pushed).
  if config.bulk_recommendations is not None:
    components.append(BulkRecommender(
        examples=sequence_builder.outputs["output_examples"],
        pushed_model=pusher.outputs["pushed_model"], **config.bulk_recommendations.to_dict()))

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.beam_pipeline_args))
