"""Draws one user's explanation as a PNG: the model's attention over the history (heads x
positions per block) and each recommendation's weights over the same history items.

Usage and how to read it: docs/serving.md, "Explanations".
"""

import argparse
import csv
import os
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np

from serving import client as client_lib
from serving import contract
from serving import model_watcher
from serving import servable as servable_lib

MAX_LABEL_CHARS = 24


def user_history(path: str, user_id: str) -> List[str]:
  """The item ids of ``user_id`` in a canonical interaction log CSV, oldest first."""
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    columns = reader.fieldnames or []
    needed = (contract.LOG_USER_ID, contract.LOG_ITEM_ID, contract.LOG_TIMESTAMP)
    missing = [c for c in needed if c not in columns]
    if missing:
      raise ValueError(f"{path}: an interaction log needs columns {','.join(needed)}; "
                       f"missing {missing}, header is {columns}")
    rows = [(float(row[contract.LOG_TIMESTAMP]), row[contract.LOG_ITEM_ID])
            for row in reader if row[contract.LOG_USER_ID] == user_id]
  if not rows:
    raise ValueError(f"{path}: user '{user_id}' has no interactions (user ids may be "
                     f"pseudonyms, docs/data.md)")
  return [item for _, item in sorted(rows, key=lambda r: r[0])]


def version_dir(model_dir: str) -> Tuple[str, int]:
  """(SavedModel folder, version): ``model_dir`` itself, or its latest numbered version."""
  if os.path.isfile(os.path.join(model_dir, servable_lib.SAVED_MODEL_FILE)):
    name = os.path.basename(os.path.normpath(model_dir))
    return model_dir, int(name) if name.isdigit() else 0
  versions = model_watcher.list_versions(model_dir)
  if not versions:
    raise ValueError(f"{model_dir} holds neither {servable_lib.SAVED_MODEL_FILE} nor "
                     f"numbered version folders")
  return os.path.join(model_dir, str(versions[-1])), versions[-1]


def explain_in_process(model_dir: str, history: Sequence[str], k: int) -> client_lib.Explanations:
  """The ``explain`` answer for one history from a SavedModel loaded here (as the
  local server answers it)."""
  path, version = version_dir(model_dir)
  servable = servable_lib.Servable(path, version)
  if contract.EXPLAIN_SIGNATURE not in servable.input_specs:
    raise ValueError(f"{path} has no '{contract.EXPLAIN_SIGNATURE}' signature (exported "
                     f"before explanations existed)")
  outputs = servable.run(contract.EXPLAIN_SIGNATURE, {
      contract.INPUT_HISTORY: client_lib.history_tensor([list(history)]),
      contract.INPUT_K: np.array(min(k, servable.num_items), np.int32)})
  return client_lib.Explanations(client_lib.explained_histories(outputs),
                                 outputs[contract.OUTPUT_NUM_UNKNOWN].tolist(), version)


def _label(item: str, titles: Mapping[str, str]) -> str:
  """The item's title, shortened, with its id (two items may share a title); else its id."""
  title = titles.get(item)
  if not title:
    return item
  if len(title) > MAX_LABEL_CHARS:
    title = title[:MAX_LABEL_CHARS - 1] + "…"
  return f"{title} ({item})"


def history_columns(explained: client_lib.ExplainedHistory) -> List[int]:
  """The positions of ``attention_ids`` that hold an item (padding left out)."""
  return [p for p, item in enumerate(explained.attention_ids) if item]


def because_matrix(explained: client_lib.ExplainedHistory) -> np.ndarray:
  """float [recommendations, history columns]: each recommendation's weight on the
  history items it names (at the item's last position), NaN elsewhere."""
  columns = history_columns(explained)
  last = {explained.attention_ids[p]: i for i, p in enumerate(columns)}
  matrix = np.full([len(explained.items), len(columns)], np.nan)
  for row, item in enumerate(explained.items):
    for history_item, weight in item.because:
      matrix[row, last[history_item]] = weight
  return matrix


def render(explained: client_lib.ExplainedHistory, titles: Mapping[str, str], heading: str,
           out_path: str) -> None:
  """Writes the PNG: one attention panel per block, then the recommendations' weights."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  columns = history_columns(explained)
  labels = [_label(explained.attention_ids[p], titles) for p in columns]
  blocks, heads = explained.attention.shape[:2]
  rows = [heads] * blocks + [max(len(explained.items), 1)]
  fig, axes = plt.subplots(
      len(rows), 1, squeeze=False, gridspec_kw={"height_ratios": rows},
      figsize=(max(9.0, 3.5 + 0.3 * len(columns)), 3.2 + 0.5 * sum(rows)))
  axes = axes[:, 0]
  fig.suptitle(heading, fontsize=10)
  if not columns:
    for ax in axes:
      ax.axis("off")
    axes[-1].text(0.5, 0.5, "no known history item: popularity fallback, nothing to explain",
                  ha="center", va="center")
  else:
    for block in range(blocks):
      _attention_panel(fig, axes[block], explained.attention[block][:, columns], block)
    _because_panel(fig, axes[-1], explained, titles)
    for ax in axes:
      ax.set_xticks(range(len(columns)))
      ax.set_xticklabels([])
    axes[-1].set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    axes[-1].set_xlabel("history, oldest left (the items the model read)")
  fig.tight_layout()
  fig.savefig(out_path, dpi=110)
  plt.close(fig)


def _attention_panel(fig, ax, attention: np.ndarray, block: int) -> None:
  image = ax.imshow(attention, aspect="auto", cmap="viridis", vmin=0.0)
  ax.set_yticks(range(attention.shape[0]))
  ax.set_yticklabels([f"head {h + 1}" for h in range(attention.shape[0])], fontsize=8)
  ax.set_title(f"block {block + 1}: attention of the query position over the history",
               fontsize=9, loc="left")
  fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)


def _because_panel(fig, ax, explained: client_lib.ExplainedHistory,
                   titles: Mapping[str, str]) -> None:
  matrix = because_matrix(explained)
  bound = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
  image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap="RdBu_r",
                    vmin=-bound, vmax=bound)
  for (row, column), weight in np.ndenumerate(matrix):
    if np.isfinite(weight):
      ax.text(column, row, f"{weight:.2g}", ha="center", va="center", fontsize=7,
              color="white" if abs(weight) > 0.6 * bound else "black")
  ax.set_yticks(range(len(explained.items)))
  ax.set_yticklabels([f"{rank}. {_label(item.item_id, titles)} ({item.score:.3g})"
                      for rank, item in enumerate(explained.items, start=1)], fontsize=8)
  ax.set_title("recommendations (score): score drop when a history item is removed",
               fontsize=9, loc="left")
  fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  model = parser.add_mutually_exclusive_group(required=True)
  model.add_argument("--model-dir", help="a SavedModel version folder, or a model base "
                                         "path (its latest version), loaded in this process")
  model.add_argument("--server", help="HOST:PORT of a gRPC server (TF Serving or "
                                      "serving.server) serving the model")
  parser.add_argument("--model-name", default=contract.MODEL_NAME)
  user = parser.add_mutually_exclusive_group(required=True)
  user.add_argument("--history", nargs="+", help="item ids, oldest first")
  user.add_argument("--user", help="a user id of --interactions")
  parser.add_argument("--interactions", help="canonical interaction log CSV "
                                             "(<output-dir>/data/interactions/interactions.csv)")
  parser.add_argument("--items", help="canonical item table CSV, to show titles")
  parser.add_argument("-k", type=int, default=5)
  parser.add_argument("--out", required=True, help="the PNG to write")
  args = parser.parse_args(argv)
  if args.user is not None and not args.interactions:
    parser.error("--user needs --interactions")
  if args.k < 1:
    parser.error(f"-k must be >= 1, got {args.k}")
  return args


def _explain(args: argparse.Namespace, history: List[str]) -> client_lib.Explanations:
  if args.model_dir:
    return explain_in_process(args.model_dir, history, args.k)
  with client_lib.RecommenderClient(args.server, args.model_name, timeout=60) as client:
    return client.explain([history], args.k)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  try:
    titles: Dict[str, str] = client_lib.load_titles(args.items) if args.items else {}
    history = args.history or user_history(args.interactions, args.user)
    result = _explain(args, history)
  except (OSError, ValueError, servable_lib.LoadError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except grpc.RpcError as e:
    print(f"error: {args.server}: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1
  who = f"user {args.user}" if args.user else "the given history"
  unknown = result.num_unknown[0] if result.num_unknown else 0
  explained = result.histories[0]
  heading = (f"{who}: {len(history)} interactions, {unknown} unknown to the model\n"
             f"model {args.model_name} version {result.version}, which reads the last "
             f"{len(explained.attention_ids)} known ones")
  render(explained, titles, heading, args.out)
  print(args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
