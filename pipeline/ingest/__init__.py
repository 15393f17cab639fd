"""Data ingestion: bring interaction logs into the canonical CSV layout.

``load_dataset`` / ``generate`` give ``(interactions, items)``; ``write_canonical`` writes them.
"""

from pipeline.ingest.canonical import CanonicalData
from pipeline.ingest.canonical import IngestError
from pipeline.ingest.canonical import read_interactions
from pipeline.ingest.canonical import read_items
from pipeline.ingest.canonical import validate_interactions
from pipeline.ingest.canonical import validate_items
from pipeline.ingest.canonical import write_canonical
from pipeline.ingest.formats import DATASET_KINDS
from pipeline.ingest.formats import detect_format
from pipeline.ingest.formats import load_dataset
from pipeline.ingest.synthetic import generate
from pipeline.ingest.synthetic import SyntheticConfig

__all__ = [
    "CanonicalData", "IngestError", "read_interactions", "read_items",
    "validate_interactions", "validate_items", "write_canonical",
    "DATASET_KINDS", "detect_format", "load_dataset", "generate",
    "SyntheticConfig",
]
