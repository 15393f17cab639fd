"""The serving contract: model, signature, input and output names every client relies on.

It imports nothing: the one module of ``serving`` the other packages may import.
"""

MODEL_NAME = "seqrec"   # the model name the pipeline pushes and clients address

DEFAULT_SIGNATURE = "serving_default"
QUERY_EMBEDDING_SIGNATURE = "query_embedding"
ITEM_EMBEDDINGS_SIGNATURE = "item_embeddings"
# serving_default plus request-time business rules (docs/serving.md, "Business rules").
RULES_SIGNATURE = "recommend"
# Optional (exports made before it lack it): serving_default's answer and why.
EXPLAIN_SIGNATURE = "explain"

INPUT_HISTORY = "history"
INPUT_K = "k"
# Inputs of RULES_SIGNATURE: string [batch, None] lists padded with PAD, then scalars.
INPUT_EXCLUDE_IDS = "exclude_ids"
INPUT_ALLOW_IDS = "allow_ids"                    # an empty row allows every item
INPUT_REQUIRE_ATTRIBUTES = "require_attributes"  # an item must have every one
INPUT_EXCLUDE_ATTRIBUTES = "exclude_attributes"  # an item must have none
INPUT_KEEP_HISTORY = "keep_history"              # bool; False (the default) excludes the history
INPUT_DIVERSITY = "diversity"                    # float MMR weight in [0, 1]; 0 = off
RULE_LIST_INPUTS = (INPUT_EXCLUDE_IDS, INPUT_ALLOW_IDS, INPUT_REQUIRE_ATTRIBUTES,
                    INPUT_EXCLUDE_ATTRIBUTES)

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
# Output of RULES_SIGNATURE: int32 [batch], rule values (ids, attributes) not in the catalogue.
OUTPUT_NUM_UNKNOWN_RULES = "num_unknown_rules"

PAD = ""

# Canonical interaction log columns (serving.explain_plot reads a user's history from it).
LOG_USER_ID = "user_id"
LOG_ITEM_ID = "item_id"
LOG_TIMESTAMP = "timestamp"

# Canonical item table columns (CSV; clients read titles from it).
ITEM_TABLE_ID = "item_id"
ITEM_TABLE_TITLE = "title"
ITEM_TABLE_ATTRIBUTES = "attributes"
