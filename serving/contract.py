"""The serving contract: model, signature, input and output names every client relies on.

It imports nothing: the one module of ``serving`` the other packages may import.
"""

MODEL_NAME = "seqrec"   # the model name the pipeline pushes and clients address

DEFAULT_SIGNATURE = "serving_default"
QUERY_EMBEDDING_SIGNATURE = "query_embedding"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"
# Optional (exports made before it lack it): serving_default's answer and why.
EXPLAIN_SIGNATURE = "explain"

INPUT_HISTORY = "history"
INPUT_K = "k"

OUTPUT_ITEM_IDS = "item_ids"
OUTPUT_SCORES = "scores"
OUTPUT_EMBEDDING = "embedding"
OUTPUT_EMBEDDINGS = "embeddings"
# Outputs of EXPLAIN_SIGNATURE besides item_ids and scores (docs/serving.md, "Explanations").
OUTPUT_BECAUSE_IDS = "because_ids"             # string [batch, k, m]
OUTPUT_BECAUSE_WEIGHTS = "because_weights"     # float32 [batch, k, m]
OUTPUT_ATTENTION = "attention"                 # float32 [batch, blocks, heads, max_seq_len]
OUTPUT_ATTENTION_IDS = "attention_ids"         # string [batch, max_seq_len]
# Extra output of serving.server: int32 [batch], unknown (dropped) history ids per row.
OUTPUT_NUM_UNKNOWN = "num_unknown"

PAD = ""

# Canonical interaction log columns (serving.explain_plot reads a user's history from it).
LOG_USER_ID = "user_id"
LOG_ITEM_ID = "item_id"
LOG_TIMESTAMP = "timestamp"

# Canonical item table columns (CSV; clients read titles from it).
ITEM_TABLE_ID = "item_id"
ITEM_TABLE_TITLE = "title"
ITEM_TABLE_ATTRIBUTES = "attributes"
