"""Compiles the pipeline for Kubeflow Pipelines v2 (or Vertex AI Pipelines).

Nothing runs here: the pipeline is compiled into a file that a cluster runs (docs/kubeflow.md).
"""

import argparse
import os
import sys
from typing import List, Optional

from pipeline import configs

# Suffixes of the compiled file and what each one holds.
JOB_SUFFIXES = (".json",)            # PipelineJob: spec plus runtime config
SPEC_SUFFIXES = (".yaml", ".yml")    # bare PipelineSpec
EXAMPLES = """\
example:
  python -m pipeline.kubeflow_v2_runner \\
      --image gcr.io/PROJECT/seqrec:TAG \\
      --output-root gs://BUCKET/seqrec \\
      --data-root gs://BUCKET/seqrec/data --item-table \\
      --output build/seqrec_pipeline.json

--output decides the format: .json is a PipelineJob (spec plus runtime config with the
pipeline root) for Vertex AI or `python -m pipeline.schedule`; .yaml / .yml the bare
PipelineSpec for the Kubeflow Pipelines UI and kfp.Client.upload_pipeline (give the
pipeline root when creating runs). Every step runs in --image, which must hold this
project; data, pipeline root and serving folder must be paths every pod can reach
(gs://, s3://). More: docs/kubeflow.md."""


def is_remote(path: str) -> bool:
  """Whether ``path`` is a URI (``gs://``, ``s3://``, ...) rather than a local path."""
  return "://" in path


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m pipeline.kubeflow_v2_runner", description=__doc__, epilog=EXAMPLES,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--image", required=True,
                      help="container image every step runs in, e.g. gcr.io/PROJECT/seqrec:TAG")
  parser.add_argument("--output-root", required=True,
                      help="root of pipeline outputs, e.g. gs://BUCKET/seqrec: the pipeline root "
                           "is <output-root>/tfx/<pipeline-name>")
  parser.add_argument("--data-root", required=True,
                      help="canonical data folder holding interactions/ [and items/], "
                           "e.g. gs://BUCKET/seqrec/data")
  parser.add_argument("--item-table", action=argparse.BooleanOptionalAction, default=None,
                      help="whether <data-root>/items holds an item table; required for remote "
                           "data roots (a local one is looked at)")
  parser.add_argument("--serving-root", default=None,
                      help="folder TF Serving watches; the model goes to "
                           "<serving-root>/<model-name> (default: <output-root>/serving)")
  parser.add_argument("--output", required=True,
                      help="compiled file: .json (PipelineJob) or .yaml (PipelineSpec)")
  configs.add_flags(parser)
  return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> configs.PipelineConfig:
  """The pipeline config the flags describe; ValueError names a bad flag."""
  if is_remote(args.data_root) and args.item_table is None:
    raise ValueError(f"--data-root {args.data_root} is remote, so it cannot be looked at here: "
                     "pass --item-table if <data-root>/items holds an item table, "
                     "else --no-item-table")
  return configs.from_flags(args, data_root=args.data_root, output_root=args.output_root,
                            use_item_table=args.item_table, serving_root=args.serving_root)


def local_path_warnings(config: configs.PipelineConfig) -> List[str]:
  """One warning per path of ``config`` that cluster pods probably cannot see."""
  paths = [("data root", config.data_root), ("pipeline root", config.pipeline_root),
           ("serving folder", config.serving_model_dir)]
  if config.schema_path:
    paths.append(("schema", config.schema_path))
  return [f"warning: {what} {path} is a local path; pods see it only if the image or a "
          "mounted volume holds it (use gs:// or s3:// on a cluster)"
          for what, path in paths if not is_remote(path)]


def compile_pipeline(config: configs.PipelineConfig, image: str, output_path: str,
                     use_pipeline_spec_2_1: bool = True) -> str:
  """Compiles the pipeline of ``config`` to ``output_path`` and returns that path.

  Args:
    config: the pipeline config; its ``pipeline_root`` becomes the PipelineJob's
      ``runtimeConfig.gcsOutputDirectory``.
    image: container image of every step.
    output_path: ``.json`` for a PipelineJob, ``.yaml``/``.yml`` for a bare
      PipelineSpec. Parent folders are created.
    use_pipeline_spec_2_1: emit PipelineSpec schema 2.1.0 (typed parameters,
      what the KFP 2.x SDK and backend use); False emits TFX's older 2.0.0.

  Raises:
    ValueError: empty image or an output suffix that is neither.
  """
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from pipeline.pipeline import create_pipeline  # pylint: disable=g-import-not-at-top
  if not image or any(c.isspace() for c in image):
    raise ValueError(f"image must be a non-empty image reference without spaces, got {image!r}")
  if not output_path.endswith(JOB_SUFFIXES + SPEC_SUFFIXES):
    raise ValueError(f"output {output_path} must end with one of "
                     f"{', '.join(JOB_SUFFIXES + SPEC_SUFFIXES)}")
  output_path = os.path.abspath(output_path)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image, use_pipeline_spec_2_1=use_pipeline_spec_2_1),
      output_dir=os.path.dirname(output_path),
      output_filename=os.path.basename(output_path))
  # No metadata connection: the cluster's own ML Metadata records the runs.
  runner.run(create_pipeline(config))
  return output_path


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  try:
    config = build_config(args)
    for warning in local_path_warnings(config):
      print(warning, file=sys.stderr)
    path = compile_pipeline(config, args.image, args.output)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Compiled pipeline {config.pipeline_name} to {path}")
  print(f"  image: {args.image}")
  print(f"  pipeline root: {config.pipeline_root}")
  print(f"  data root: {config.data_root} (item table: {config.has_item_table})")
  print(f"  serving folder: {config.serving_model_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
