"""Feature names, named once; every other module imports them from here.

The three layers of data they name: docs/architecture.md, "Data as it flows through".
"""

# pylint: disable=unused-import
from serving.contract import ITEM_TABLE_ATTRIBUTES
from serving.contract import ITEM_TABLE_ID
from serving.contract import ITEM_TABLE_TITLE
from serving.contract import LOG_ITEM_ID
from serving.contract import LOG_TIMESTAMP
from serving.contract import LOG_USER_ID
# pylint: enable=unused-import

# Canonical log columns (LOG_USER_ID, LOG_ITEM_ID, LOG_TIMESTAMP: from serving.contract).
LOG_WEIGHT = "weight"
LOG_EVENT_TYPE = "event_type"
LOG_REQUIRED_COLUMNS = (LOG_USER_ID, LOG_ITEM_ID, LOG_TIMESTAMP)

# Canonical item table columns.
# ITEM_TABLE_ID, ITEM_TABLE_TITLE, ITEM_TABLE_ATTRIBUTES: from serving.contract, above.
ITEM_TABLE_TEXT = "text"  # optional
ATTRIBUTE_SEPARATOR = "|"

# Sequence examples (raw, before Transform).
USER_ID = "user_id"
HISTORY = "history"
TARGET = "target"
ITEM_ID = "item_id"
ITEM_ATTRIBUTES = "item_attributes"
TITLE = "title"

# Splits written by the SequenceBuilder.
TRAIN_SPLIT = "train"      # history = items[:-3], target = items[-3] (and the model predicts every step)
EVAL_SPLIT = "eval"        # history = items[:-2], target = items[-2]  (validation)
TEST_SPLIT = "test"        # history = items[:-1], target = items[-1]
ITEMS_SPLIT = "items"      # one row per catalogue item
SEQUENCE_SPLITS = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)
ALL_SPLITS = SEQUENCE_SPLITS + (ITEMS_SPLIT,)

# Transformed features.
HISTORY_IDS = "history_ids"
TARGET_ID = "target_id"
ITEM_INDEX = "item_index"
ITEM_ATTRIBUTE_IDS = "item_attribute_ids"

# tf.Transform vocabulary names (files in the transform output's assets).
ITEM_VOCAB = "item_vocab"
ATTRIBUTE_VOCAB = "attribute_vocab"
