"""Catalogue refresh without retraining: new items, removals and availability, pushed as a version.

docs/serving.md, "Refreshing the catalogue".
"""

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from components.pusher import atomic_push as pusher
from pipeline import embed_items
from pipeline.ingest import IngestError, read_items
from pipeline.local_runner import CONFIG_FILE, EMBED_DIR
from trainer import features
from trainer import item_text
from trainer import item_vectors
from trainer import text_encoder

AVAILABLE = "available"   # the availability file's (or item table's) column
_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n")
EXAMPLES = """\
examples:
  python -m pipeline.refresh_catalogue --pipeline-output outputs/ml-latest --items items.csv --embed
  python -m pipeline.refresh_catalogue --serving-dir outputs/x/serving/seqrec --items items.csv \\
      --item-vectors new_vectors.parquet --availability stock.csv
  python -m pipeline.refresh_catalogue --serving-dir serving/seqrec --items items.csv \\
      --availability stock.csv          # removals and availability only

Pushes <serving dir>/<latest + 1> atomically; the server swaps to it. Items missing from
--items are never recommended again (unless listed again); new items need a text model
(item_representation "text" or "id+text") and vectors (--embed or --item-vectors)."""


class RefreshError(Exception):
  """A refresh that cannot go ahead; the message is one line for the user."""


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  model = parser.add_mutually_exclusive_group(required=True)
  model.add_argument("--pipeline-output", help="a pipeline's --output-dir (its config.json "
                                               "names the serving folder and item vectors)")
  model.add_argument("--serving-dir", help="the model's serving base folder: the newest "
                                           "version is extended")
  model.add_argument("--model-dir", help="one version folder to extend; the refreshed one is "
                                         "pushed next to it")
  parser.add_argument("--items", required=True,
                      help="the updated item table (item_id[,title][,attributes][,text]"
                           f"[,{AVAILABLE}])")
  parser.add_argument("--availability", help=f"CSV item_id,{AVAILABLE} (1/0, true/false, "
                                             "yes/no); items not listed keep their state")
  vectors = parser.add_mutually_exclusive_group()
  vectors.add_argument("--embed", action="store_true",
                       help="embed new and changed items' text (python -m pipeline.embed_items)")
  vectors.add_argument("--item-vectors", help="precomputed vectors of new or changed items")
  parser.add_argument("--encoder", default=text_encoder.DEFAULT_ENCODER,
                      help="with --embed: 'default' or a local sentence-Transformer folder; "
                           "the one the model was trained with")
  parser.add_argument("--cache", help="with --embed: embedding cache folder (default: "
                                      f"<pipeline output>/{EMBED_DIR}/cache, else none)")
  parser.add_argument("--batch-size", type=int, default=64)
  return parser.parse_args(argv)


def _read_config(output_dir: str) -> dict:
  path = os.path.join(output_dir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise RefreshError(f"{path} not found: --pipeline-output takes the --output-dir of a "
                       "pipeline run")
  with open(path) as f:
    return json.load(f)


def model_location(args: argparse.Namespace) -> Tuple[str, str]:
  """(version folder to extend, serving base folder to push to)."""
  if args.model_dir:
    model_dir = os.path.normpath(args.model_dir)
    if not os.path.isfile(os.path.join(model_dir, pusher.SAVED_MODEL_FILE)):
      raise RefreshError(f"--model-dir {model_dir} holds no {pusher.SAVED_MODEL_FILE}: pass a "
                         "version folder of a pushed model")
    return model_dir, os.path.dirname(model_dir)
  if args.pipeline_output:
    config = _read_config(args.pipeline_output)
    serving_root = config.get("serving_root") or os.path.join(config["output_root"], "serving")
    base_dir = os.path.join(serving_root, config["model_name"])
  else:
    base_dir = args.serving_dir
  versions = pusher.existing_versions(base_dir)
  if not versions:
    raise RefreshError(f"no model version in {base_dir}: run the pipeline first")
  return os.path.join(base_dir, str(versions[-1])), base_dir


def _flags(values: pd.Series, source: str, row_label) -> Dict[int, bool]:
  """Row position -> in stock, for the rows whose cell is set (empty cells: unchanged)."""
  flags = {}
  for i, cell in enumerate(values):
    text = "" if cell is None or (isinstance(cell, float) and np.isnan(cell)) else str(cell)
    text = text.strip().lower()
    if not text:
      continue
    if text not in _TRUE + _FALSE:
      raise RefreshError(f"{source}, {row_label(i)}: '{AVAILABLE}' is {cell!r}; expected 1/0, "
                         "true/false or yes/no")
    flags[i] = text in _TRUE
  return flags


def read_availability(path: str, required: bool = True) -> Dict[str, bool]:
  """item id -> in stock, from a CSV/TSV/Parquet file with ``item_id`` and ``available``.

  With ``required`` False, a file without an ``available`` column gives {}.
  """
  try:
    if path.endswith(".parquet"):
      df, label = pd.read_parquet(path), lambda i: f"row {i + 1}"
    else:
      df = pd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",", dtype=str,
                       keep_default_na=False)
      label = lambda i: f"line {i + 2}"
  except (OSError, ValueError) as e:
    raise RefreshError(f"cannot read availability file {path}: {str(e).splitlines()[0]}") from e
  if AVAILABLE not in df.columns or features.ITEM_TABLE_ID not in df.columns:
    if not required:
      return {}
    raise RefreshError(f"availability file {path} needs columns '{features.ITEM_TABLE_ID}' and "
                       f"'{AVAILABLE}'; found {list(df.columns)}")
  ids = df[features.ITEM_TABLE_ID].astype(str).str.strip().tolist()
  return {ids[i]: flag for i, flag in _flags(df[AVAILABLE], f"availability file {path}",
                                             label).items()}


def _texts(items: pd.DataFrame) -> List[str]:
  has_text = features.ITEM_TABLE_TEXT in items.columns
  return item_text.item_texts(
      items[features.ITEM_TABLE_TITLE].tolist(), items[features.ITEM_TABLE_ATTRIBUTES].tolist(),
      items[features.ITEM_TABLE_TEXT].tolist() if has_text else [""] * len(items))


def embed_table(items: pd.DataFrame, known: set, args: argparse.Namespace,
                cache_dir: Optional[str]) -> Tuple[Dict[str, np.ndarray], str]:
  """(item id -> text vector, encoder identity) of the table's items with a text.

  Every new item needs a text; a served item without one keeps its embedding. Texts
  embedded before come from the cache.
  """
  ids = items[features.ITEM_TABLE_ID].tolist()
  texts = _texts(items)
  new = [i for i, item in enumerate(ids) if item not in known]
  item_text.check_texts([ids[i] for i in new], [texts[i] for i in new],
                        f"item table {args.items} (new items)",
                        has_text_column=features.ITEM_TABLE_TEXT in items.columns)
  rows = [i for i, text in enumerate(texts) if text.strip()]
  encoder = text_encoder.load_encoder(args.encoder, args.batch_size)
  cache = item_vectors.EmbeddingCache(cache_dir, encoder.identity, encoder.dim)
  vectors = item_vectors.embed_texts([ids[i] for i in rows], [texts[i] for i in rows], encoder,
                                     cache, embed_items.progress_printer())
  return dict(zip(vectors.item_ids, vectors.vectors)), encoder.identity


def check_encoder(args: argparse.Namespace, identity: str) -> None:
  """With --pipeline-output: the encoder must be the one the training vectors came from."""
  if not args.pipeline_output:
    return
  path = _read_config(args.pipeline_output).get("item_vectors")
  if not path or not os.path.isfile(path) or not path.endswith(".parquet"):
    return
  metadata = pq.read_schema(path).metadata or {}
  trained = metadata.get(b"source", b"").decode()
  if trained and trained != identity:
    raise RefreshError(f"the model was trained on item vectors from {trained}, not from encoder "
                       f"{args.encoder}: refresh with that encoder (--encoder) or --item-vectors "
                       "from the same source")


def table_vectors(items: pd.DataFrame, served, args: argparse.Namespace) -> Dict[str, np.ndarray]:
  """Text vectors for the refresh: from --item-vectors or --embed; {} without either."""
  if not served.uses_item_text:
    return {}
  ids = set(items[features.ITEM_TABLE_ID])
  if args.item_vectors:
    vectors = item_vectors.read_vectors(args.item_vectors)
    return {item: v for item, v in zip(vectors.item_ids, vectors.vectors) if item in ids}
  if not args.embed:
    return {}
  cache = args.cache or (os.path.join(args.pipeline_output, EMBED_DIR, "cache")
                         if args.pipeline_output else None)
  vectors, identity = embed_table(items, set(served.item_ids), args, cache)
  check_encoder(args, identity)
  return vectors


def stock_of(items_path: str, availability: Optional[str]) -> Dict[str, bool]:
  """The item table's ``available`` column, overridden by the availability file."""
  stock = read_availability(items_path, required=False)
  if availability:
    stock.update(read_availability(availability))
  return stock


def push(module, base_dir: str, based_on: str) -> str:
  """Saves ``module`` and pushes it as version latest + 1 with the Pusher's atomic copy."""
  from trainer import export  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix="refresh-") as scratch:
    export.save_module(module, os.path.join(scratch, "model"))
    latest = pusher.existing_versions(base_dir)[-1]
    if os.path.basename(based_on) != str(latest) and os.path.dirname(based_on) == base_dir:
      raise RefreshError(f"version {latest} appeared in {base_dir} during the refresh of "
                         f"{based_on}: refresh again")
    # now=0: the refreshed version follows the newest one (version + 1).
    return pusher.push_atomically(os.path.join(scratch, "model"), base_dir, now=0)


def summary(refresh, path: str, seconds: float, timings: Mapping[str, float], id_only: bool,
            has_vectors: bool) -> List[str]:
  """The lines the command prints."""
  phases = ", ".join(f"{name} {value:.1f} s" for name, value in timings.items())
  lines = [f"Refreshed catalogue -> {path} in {seconds:.1f} s ({phases}): "
           f"{len(refresh.added)} added, {len(refresh.changed)} changed, "
           f"{len(refresh.removed)} removed, {refresh.num_unavailable} unavailable, "
           f"{int(refresh.available.sum())} servable"]
  if refresh.not_added:
    reason = ("this model represents items by id alone: new items need text items "
              "(item_representation 'text' or 'id+text', configs/README.md) and a retrain"
              if id_only else "they have no vector: pass --embed or --item-vectors FILE"
              if not has_vectors else "--item-vectors has no vector for them")
    lines.append(f"{len(refresh.not_added)} new items not added (first "
                 f"{refresh.not_added[0]!r}): {reason}")
  if refresh.unknown_availability:
    lines.append(f"{len(refresh.unknown_availability)} availability rows name items outside "
                 f"the catalogue (first {refresh.unknown_availability[0]!r}): ignored")
  return lines


def refresh(args: argparse.Namespace) -> List[str]:
  """Runs the refresh; returns the summary lines."""
  from trainer import catalogue_refresh  # pylint: disable=g-import-not-at-top
  timings: Dict[str, float] = {}
  start = last = time.time()

  def phase(name: str) -> None:
    nonlocal last
    now = time.time()
    timings[name] = now - last
    last = now

  model_dir, base_dir = model_location(args)
  items = read_items(args.items)
  stock = stock_of(args.items, args.availability)
  served = catalogue_refresh.read_served_model(model_dir)
  phase("read")
  vectors = table_vectors(items, served, args)
  phase("embed")
  attributes = [a.split(features.ATTRIBUTE_SEPARATOR) if a else []
                for a in items[features.ITEM_TABLE_ATTRIBUTES]]
  result = catalogue_refresh.plan_refresh(served, items[features.ITEM_TABLE_ID].tolist(),
                                          attributes, vectors, stock)
  if not result.available.any():
    raise RefreshError(f"no item of {args.items} could be served: nothing pushed")
  phase("candidates")
  with tempfile.TemporaryDirectory(prefix="refresh-assets-") as assets:
    module = catalogue_refresh.build_module(served, result.item_ids, result.embeddings,
                                            result.available, result.in_catalogue,
                                            result.text_vectors, assets, result.attributes)
    path = push(module, base_dir, model_dir)
  phase("save and push")
  return summary(result, path, time.time() - start, timings, not served.uses_item_text,
                 bool(args.embed or args.item_vectors))


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  try:
    lines = refresh(args)
  except (RefreshError, IngestError, item_text.ItemTextError,
          text_encoder.MissingTextExtraError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print("\n".join(lines), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
