"""The serving contract: model, signature, input and output names every client relies on.

It imports nothing: the one module of ``serving`` the other packages may import.
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
