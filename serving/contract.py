"""The serving contract: model, signature, input and output names every client relies on.

It imports nothing: the one module of ``serving`` that the trainer, the components
and the pipeline may import (tests/test_import_graph.py).

``serving_default``
    inputs:  ``history`` string [batch, max_len], raw item ids, oldest first, most
             recent last, padded with "" (padding may stand anywhere; it is dropped);
             ``k`` int32 scalar, how many items to return.
    outputs: ``item_ids`` string [batch, min(k, catalogue size)], ``scores`` float32,
             best first; items of the row's own history are never returned: when
             fewer than k items remain, the rest of the row is "" with score -inf.
``query_embedding``
    inputs:  ``history`` as above. outputs: ``embedding`` float32 [batch, dim].
``item_embeddings``
    no inputs. outputs: ``item_ids`` string [num_items], ``embeddings`` float32
    [num_items, dim]. Score = dot(query embedding, item embedding).
"""

MODEL_NAME = "seqrec"   # the model name the pipeline pushes and clients address

DEFAULT_SIGNATURE = "serving_default"
QUERY_EMBEDDING_SIGNATURE = "query_embedding"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"

INPUT_HISTORY = "history"
INPUT_K = "k"

OUTPUT_ITEM_IDS = "item_ids"
OUTPUT_SCORES = "scores"
OUTPUT_EMBEDDING = "embedding"
OUTPUT_EMBEDDINGS = "embeddings"
# Extra output of serving.server: int32 [batch], unknown (dropped) history ids per row.
OUTPUT_NUM_UNKNOWN = "num_unknown"

PAD = ""

# Canonical item table columns (CSV; clients read titles from it).
ITEM_TABLE_ID = "item_id"
ITEM_TABLE_TITLE = "title"
ITEM_TABLE_ATTRIBUTES = "attributes"
