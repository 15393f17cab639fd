"""Cold-item selection: deterministic in (seed, id) alone, the fraction respected, the hold-out rule."""

import hashlib
import json

import pytest

from components.sequence_builder import cold_items

IDS = [str(i).encode() for i in range(20000)]


def _cold(fraction: float, seed: int, ids=IDS) -> frozenset:
  selector = cold_items.ColdItemSelector(fraction, seed)
  return frozenset(i for i in ids if selector.is_cold(i))


def test_same_seed_same_set_whatever_the_order():
  assert _cold(0.1, 7) == _cold(0.1, 7, list(reversed(IDS)))
  assert _cold(0.1, 7) == _cold(0.1, 7)


def test_different_seed_different_set():
  first, second = _cold(0.1, 7), _cold(0.1, 8)
  assert first != second
  # Two independent 10% draws overlap in about 1% of the items, not in most of them.
  assert len(first & second) < 0.3 * len(first)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.5])
def test_fraction_is_respected_within_tolerance(fraction):
  # Binomial(20000, p): 5 standard deviations are below 0.018 for every p here.
  assert abs(len(_cold(fraction, 3)) / len(IDS) - fraction) < 0.018


def test_a_larger_fraction_holds_out_a_superset():
  assert _cold(0.05, 3) <= _cold(0.1, 3)


def test_fraction_zero_holds_out_nothing():
  assert not _cold(0.0, 3)


def test_fingerprint_is_sha256_of_seed_nul_id():
  # The documented recipe, so other tools can reproduce the selection.
  digest = hashlib.sha256(b"42\x00item-1").digest()
  assert cold_items.fingerprint(42, b"item-1") == int.from_bytes(digest[:8], "big")


def test_hold_out_keeps_the_last_item_only():
  selector = cold_items.ColdItemSelector(0.3, 128)   # of a..h: c and f are cold
  assert [i for i in b"abcdefgh" if selector.is_cold(bytes([i]))] == list(b"cf")
  assert selector.hold_out([b"a", b"c", b"b", b"f"]) == [b"a", b"b", b"f"]
  assert selector.hold_out([b"f", b"a", b"c", b"b"]) == [b"a", b"b"]
  assert selector.hold_out([]) == []


@pytest.mark.parametrize("fraction, seed", [(-0.1, 0), (1.0, 0), ("0.1", 0), (True, 0),
                                            (0.1, -1), (0.1, 1.5)])
def test_bad_parameters_are_refused(fraction, seed):
  with pytest.raises(ValueError, match="cold_item"):
    cold_items.ColdItemSelector(fraction, seed)


def test_json_round_trip_keeps_non_utf8_ids(tmp_path):
  ids = [b"b", b"a", b"\xff\xfe"]
  text = cold_items.to_json(cold_items.ColdItemSelector(0.1, 5), ids)
  assert json.loads(text)["seed"] == 5
  (tmp_path / cold_items.COLD_ITEMS_FILE).write_text(text)
  assert cold_items.read(str(tmp_path)) == frozenset(ids)
  assert cold_items.read(str(tmp_path / "elsewhere")) is None
