"""serving.guard: what error messages may show a client (the call checks run in test_server.py)."""

import pytest

from serving import guard


@pytest.mark.parametrize("text, expected", [
    ("/srv/models/seqrec/2/saved_model.pb is not a SavedModel protocol buffer",
     ".../saved_model.pb is not a SavedModel protocol buffer"),
    ("/srv/models/seqrec/2: missing signature(s) ['k']", ".../2: missing signature(s) ['k']"),
    ("cannot read gs://bucket/serving/seqrec/3/variables/", "cannot read .../variables"),
    ("file '/tmp/x.txt', line 3", "file '.../x.txt', line 3"),
    ("input 'history' has 17 rows; at most 16 (rows/columns)",
     "input 'history' has 17 rows; at most 16 (rows/columns)"),
    ("Servable not found for request: Latest(seqrec)",
     "Servable not found for request: Latest(seqrec)"),
])
def test_redact_paths_keeps_only_the_last_component(text, expected):
  assert guard.redact_paths(text) == expected


def test_client_text_is_bounded():
  text = guard.client_text("x" * (guard.MAX_DETAILS_CHARS * 3))
  assert len(text) == guard.MAX_DETAILS_CHARS + 3 and text.endswith("...")
  assert guard.client_text("short") == "short"
