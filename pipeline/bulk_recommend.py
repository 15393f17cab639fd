"""Top-k recommendations for every user (or a list of users) from the pushed model, as files.

A Beam job (DirectRunner here, any runner by --beam-arg); docs/serving.md, "Bulk recommendations".
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from pipeline import progress
from serving import contract

EXAMPLES = """\
examples:
  python -m pipeline.bulk_recommend --model-dir outputs/synthetic/serving/seqrec \\
      --events outputs/synthetic/data/interactions/interactions.csv --output recs/
  python -m pipeline.bulk_recommend --model-dir outputs/synthetic/serving/seqrec \\
      --examples outputs/synthetic/tfx/seqrec-synthetic/SequenceBuilder/output_examples/7 \\
      --output recs/ --users users.txt --k 20 --format csv
  python -m pipeline.bulk_recommend --model-dir outputs/synthetic/serving/seqrec \\
      --events outputs/synthetic/data/interactions/interactions.csv --output recs/ \\
      --rules user_rules.jsonl --input 'exclude_attributes=["brand:Acme"]'

Histories: --events (canonical events CSVs, every event) or --examples (the
SequenceBuilder output: its test split's history + target). Users file: one id per
line. Output: <output>/recommendations-SSSSS-of-NNNNN.<format>, one row per
(user_id, rank, item_id, score); history items are never recommended (unless a rule
keeps them). Rules file: JSON Lines, one user a line, e.g.
  {"user_id": "u001", "exclude_ids": ["i003"], "require_attributes": ["category:Hair"]}
with any inputs of --signature (default then: recommend); list inputs extend the
global --input lists, the others (keep_history, diversity) replace them; users not
in the file get the global rules. docs/serving.md, "Per-user rules in bulk runs"."""

DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m pipeline.bulk_recommend",
                                   description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model-dir", required=True,
                      help="serving base <serving>/<model> (newest version) or a pushed version")
  parser.add_argument("--output", required=True, help="output folder (no earlier output in it)")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--events", action="append",
                      help="canonical events CSV (user_id,item_id,timestamp; glob); repeatable")
  source.add_argument("--examples",
                      help="SequenceBuilder output_examples folder (or a {split} file pattern)")
  parser.add_argument("--users", help="only these users: a file with one user id per line")
  parser.add_argument("--k", type=int, default=10, help="recommendations per user")
  parser.add_argument("--format", default="parquet", help="parquet (default) or csv")
  parser.add_argument("--num-shards", type=int, default=0,
                      help="output files (0: the runner decides)")
  parser.add_argument("--signature", default=None,
                      help="signature to call (default serving_default)")
  parser.add_argument("--input", action="append", default=[], metavar="NAME=JSON",
                      help="a further input of --signature, the same for every user (the "
                           "global rules); repeatable; the recommend signature's inputs "
                           "default to no rule")
  parser.add_argument("--rules", metavar="FILE",
                      help="per-user rules: JSON Lines, {\"user_id\": ..., <input>: <value>} "
                           "a line; list inputs extend the global ones, others replace them "
                           f"(--signature defaults to {contract.RULES_SIGNATURE})")
  parser.add_argument("--batch-size", type=int, default=256, help="histories per model call")
  parser.add_argument("--beam-arg", action="append", default=None,
                      help="Beam pipeline arg, repeatable; replaces the in-memory DirectRunner "
                           f"defaults {list(DEFAULT_BEAM_ARGS)}")
  parser.add_argument("--verbose", action="store_true", help="show every Beam/TF log line")
  return parser.parse_args(argv)


def parse_inputs(pairs: List[str]) -> Dict[str, Any]:
  """``NAME=JSON`` pairs as a dict; a ValueError names a malformed one."""
  inputs = {}
  for pair in pairs:
    name, sep, text = pair.partition("=")
    if not sep or not name:
      raise ValueError(f"--input {pair!r}: expected NAME=JSON, e.g. exclude='[\"item_3\"]'")
    try:
      inputs[name] = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"--input {pair!r}: the value is not JSON ({e})") from e
  return inputs


def build(args: argparse.Namespace):
  """(settings, histories transform, source name); ValueError on bad arguments."""
  from components.bulk_recommender import histories  # pylint: disable=g-import-not-at-top
  from components.bulk_recommender import recommend  # pylint: disable=g-import-not-at-top
  from components.bulk_recommender import saved_model  # pylint: disable=g-import-not-at-top
  from components.bulk_recommender import user_rules  # pylint: disable=g-import-not-at-top
  signature = args.signature or (contract.RULES_SIGNATURE if args.rules
                                 else contract.DEFAULT_SIGNATURE)
  settings = recommend.BulkSettings(
      model_dir=saved_model.resolve_model_dir(args.model_dir), k=args.k, signature=signature,
      extra_inputs=user_rules.with_rule_defaults(signature, parse_inputs(args.input)),
      output_format=args.format, num_shards=args.num_shards, batch_size=args.batch_size,
      rules_file=args.rules)
  settings.check()
  if recommend.output_files(args.output):
    raise ValueError(f"--output {args.output} already holds recommendations "
                     f"({recommend.FILE_PREFIX}-*); remove them or choose another folder")
  if args.users:
    histories.check_users_file(args.users)
  if args.events:
    files = histories.event_files(args.events)
    return settings, histories.ReadEventHistories(files), histories.source_name(files)
  try:
    files = histories.example_files(args.examples)
  except FileNotFoundError as e:
    raise ValueError(f"--examples: {e}") from e
  return settings, histories.ReadExampleHistories(files), histories.source_name(files)


def summary_line(result, settings, output: str) -> str:
  """'N users, R rows (k=K) -> output (F parquet files) in S s (U users/s)'."""
  return (f"{result.users} users, {result.rows} rows (k={settings.k}) -> {output} "
          f"({len(result.files)} {settings.output_format} files) in {result.seconds:.1f} s "
          f"({result.users_per_second:.0f} users/s)")


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  progress.configure(args.verbose)
  progress.import_tensorflow(args.verbose)
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from components.bulk_recommender import recommend  # pylint: disable=g-import-not-at-top
  try:
    settings, read_histories, source = build(args)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Bulk recommendations: {settings.model_dir}, signature '{settings.signature}', "
        f"k={settings.k}, histories from {source}"
        + (f", users in {args.users}" if args.users else "")
        + (f", per-user rules in {args.rules}" if args.rules else ""), flush=True)
  options = PipelineOptions(list(args.beam_arg or DEFAULT_BEAM_ARGS))
  result = recommend.run(settings, read_histories, args.output, args.users,
                         make_pipeline=lambda: beam.Pipeline(options=options))
  print(summary_line(result, settings, args.output), flush=True)
  if args.rules:
    print(f"per-user rules: {result.users_with_rules} user(s) under their own rules, the "
          f"others under the global ones; {result.calls} model calls", flush=True)
  if result.rules_without_history:
    print(f"note: {result.rules_without_history} user(s) of {args.rules} have no history "
          "in the input; left out", flush=True)
  if result.users_without_history:
    print(f"note: {result.users_without_history} user(s) of {args.users} have no history "
          "in the input; left out", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
