"""The serving contract: signature, input and output names every client relies on.

Kept free of training code so that clients and the server import it alone.

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

DEFAULT_SIGNATURE = "serving_default"
QUERY_EMBEDDING_SIGNATURE = "query_embedding"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"

INPUT_HISTORY = "history"
INPUT_K = "k"

OUTPUT_ITEM_IDS = "item_ids"
OUTPUT_SCORES = "scores"
OUTPUT_EMBEDDING = "embedding"
OUTPUT_EMBEDDINGS = "embeddings"

PAD = ""
