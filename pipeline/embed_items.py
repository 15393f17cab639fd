"""Embeds every item's text with a pretrained sentence Transformer, or takes precomputed vectors.

Writes ``<out>/item_vectors.parquet`` (item_id, vector); docs/data.md, "Item text embeddings".
"""

import argparse
import os
import sys
import time
from typing import List, Optional

import pandas as pd

from pipeline.ingest import IngestError, load_dataset, read_items
from pipeline.ingest import formats
from trainer import features
from trainer import item_text
from trainer import item_vectors
from trainer import text_encoder

EXAMPLES = """\
examples:
  python -m pipeline.embed_items --items outputs/ml-latest/data/items/items.csv --out DIR
  python -m pipeline.embed_items --dataset unisrec --data-dir ../shared/data/scientific --out DIR
  python -m pipeline.embed_items --items items.csv --encoder path/to/multilingual-model --out DIR
  python -m pipeline.embed_items --items items.csv --vectors my_llm_vectors.parquet --out DIR

Texts embedded before by the same encoder come from the cache (default <out>/cache),
so a nightly run only embeds new or changed items. Needs the optional 'text' extra
unless --vectors is given."""


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--items", help="item table file (item_id[,title][,attributes][,text])")
  source.add_argument("--dataset", choices=formats.DATASET_KINDS,
                      help="take the item table from a dataset folder (with --data-dir)")
  parser.add_argument("--data-dir", help="the dataset folder for --dataset")
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--encoder", default=text_encoder.DEFAULT_ENCODER,
                      help="'default' (the packaged all-MiniLM-L6-v2, English) or a local "
                           "sentence-Transformer folder")
  parser.add_argument("--vectors", help="precomputed item vectors (.parquet/.csv/.tsv/.npz with "
                                        "item_id and vector) instead of an encoder")
  parser.add_argument("--cache", help="embedding cache folder (default: <out>/cache)")
  parser.add_argument("--batch-size", type=int, default=64)
  args = parser.parse_args(argv)
  if args.dataset and not args.data_dir:
    parser.error("--dataset needs --data-dir")
  return args


def load_items(args: argparse.Namespace) -> pd.DataFrame:
  """The canonical item table named by --items or --dataset/--data-dir."""
  if args.items:
    return read_items(args.items)
  _, items = load_dataset(args.dataset, args.data_dir)
  if items is None:
    raise IngestError(f"dataset {args.dataset} in {args.data_dir} has no item table")
  return items


def embed(items: pd.DataFrame, source: str, args: argparse.Namespace) -> item_vectors.ItemVectors:
  """Vectors of every item of the table: from --vectors, else through the encoder and cache."""
  ids = items[features.ITEM_TABLE_ID].tolist()
  if args.vectors:
    return item_vectors.read_vectors(args.vectors, ids)
  has_text = features.ITEM_TABLE_TEXT in items.columns
  texts = item_text.item_texts(
      items[features.ITEM_TABLE_TITLE].tolist(), items[features.ITEM_TABLE_ATTRIBUTES].tolist(),
      items[features.ITEM_TABLE_TEXT].tolist() if has_text else [""] * len(items))
  item_text.check_texts(ids, texts, source, has_text_column=has_text)
  encoder = text_encoder.load_encoder(args.encoder, args.batch_size)
  cache = item_vectors.EmbeddingCache(args.cache or os.path.join(args.out, "cache"),
                                      encoder.identity, encoder.dim)
  return item_vectors.embed_texts(ids, texts, encoder, cache, progress_printer())


def progress_printer(every_seconds: float = 10.0) -> text_encoder.Progress:
  """Prints 'embedded done/total texts' to stderr at most every few seconds, and at the end."""
  start = last = time.time()

  def report(done: int, total: int) -> None:
    nonlocal last
    now = time.time()
    if done == total or now - last >= every_seconds:
      last = now
      print(f"embedded {done}/{total} texts ({now - start:.0f} s)", file=sys.stderr, flush=True)
  return report


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  start = time.time()
  try:
    items = load_items(args)
    source = (f"item table {args.items}" if args.items
              else f"{args.dataset} items in {args.data_dir}")
    vectors = embed(items, source, args)
    path = item_vectors.write_vectors(vectors, args.out)
  except (IngestError, item_text.ItemTextError, text_encoder.MissingTextExtraError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(summary_line(vectors, path, time.time() - start, bool(args.vectors)), flush=True)
  return 0


def summary_line(vectors: item_vectors.ItemVectors, path: str, seconds: float,
                 precomputed: bool) -> str:
  """'N items, C from the cache, E texts embedded, D-d -> path in S s' (or 'from <file>')."""
  if precomputed:
    origin = f"precomputed vectors from {vectors.source}"
  else:
    origin = f"{vectors.num_cached} from the cache, {vectors.num_embedded} texts embedded"
  return (f"{len(vectors.item_ids)} items, {origin}, {vectors.dim}-d -> {path} "
          f"in {seconds:.1f} s")


if __name__ == "__main__":
  sys.exit(main())
