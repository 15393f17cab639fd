"""Per-user rules of a bulk run: a JSON Lines file keyed by user id, merged with the global rules.

Format and merge in docs/serving.md, "Per-user rules in bulk runs".
"""

import json
import math
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components.bulk_recommender import saved_model
from serving import contract

USER_ID = "user_id"
# The zero value of every input of the ``recommend`` signature: no rule.
RULE_DEFAULTS = {**{name: [] for name in contract.RULE_LIST_INPUTS},
                 contract.INPUT_KEEP_HISTORY: False, contract.INPUT_DIVERSITY: 0.0}
UserRules = Dict[str, Any]   # input name -> value, only the inputs a user's line names


class RulesFileError(ValueError):
  """A malformed rules file; the one-line message names the file, line and field."""


def with_rule_defaults(signature: str, extra_inputs: Mapping[str, Any]) -> Dict[str, Any]:
  """``extra_inputs``, and for ``contract.RULES_SIGNATURE`` the zero value of those not given."""
  if signature != contract.RULES_SIGNATURE:
    return dict(extra_inputs)
  return {**RULE_DEFAULTS, **extra_inputs}


def merge(global_inputs: Mapping[str, Any], user: Optional[UserRules],
          specs: Mapping[str, saved_model.InputSpec]) -> Dict[str, Any]:
  """One user's inputs: per-row list inputs extend the global lists, the rest replace.

  A list input (rank >= 2, e.g. ``exclude_ids``) gets the user's values after the
  global ones (duplicates dropped); any other input the user names (e.g.
  ``keep_history``, ``diversity``) replaces the global value.
  """
  if not user:
    return dict(global_inputs)
  merged = dict(global_inputs)
  for name, value in user.items():
    if specs[name].rank >= 2:
      known = list(global_inputs[name])
      merged[name] = known + [v for v in dict.fromkeys(value) if v not in set(known)]
    else:
      merged[name] = value
  return merged


def _type_error(spec: saved_model.InputSpec, value: Any) -> Optional[str]:
  """Why ``value`` cannot be one scalar of ``spec.dtype``, or None."""
  if spec.dtype == tf.string:
    ok = isinstance(value, str)
  elif spec.dtype == tf.bool:
    ok = isinstance(value, bool)
  elif spec.dtype.is_integer:
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif spec.dtype.is_floating:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
  else:
    ok = True
  return None if ok else f"expected a {spec.dtype.name}, got {json.dumps(value)}"


def value_error(name: str, spec: saved_model.InputSpec, value: Any) -> Optional[str]:
  """Why ``value`` does not fit the signature input ``name`` (one user's value), or None."""
  if spec.rank >= 2:
    if not isinstance(value, list):
      return f"expected a list of {spec.dtype.name} values, got {json.dumps(value)}"
    errors = [_type_error(spec, v) for v in value]
    return next((e for e in errors if e), None)
  if spec.rank < 0:
    return None
  error = _type_error(spec, value)
  if error is None and name == contract.INPUT_DIVERSITY and not 0.0 <= value <= 1.0:
    return f"must be between 0 and 1, got {value}"
  return error


def parse_line(line: str, specs: Mapping[str, saved_model.InputSpec], path: str,
               line_number: Any) -> Optional[Tuple[str, UserRules]]:
  """(user id, their rules) of one line; None for a blank one; RulesFileError if malformed."""
  if not line.strip():
    return None
  where = f"rules file {path}, line {line_number}"
  try:
    row = json.loads(line)
  except json.JSONDecodeError as e:
    raise RulesFileError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from e
  if not isinstance(row, dict):
    raise RulesFileError(f"{where}: not a JSON object but {json.dumps(row)[:60]}")
  user = row.pop(USER_ID, None)
  if not isinstance(user, str) or not user:
    raise RulesFileError(f"{where}, field '{USER_ID}': expected a non-empty string, got "
                         f"{json.dumps(user)}")
  for name, value in row.items():
    if name not in specs:
      raise RulesFileError(f"{where}, field '{name}': not an input of the signature; "
                           f"fields: {[USER_ID] + sorted(specs)}")
    error = value_error(name, specs[name], value)
    if error:
      raise RulesFileError(f"{where}, field '{name}': {error}")
  return user, row


def _lines(path: str) -> Iterator[Tuple[int, str]]:
  with tf.io.gfile.GFile(path, "r") as f:
    for number, line in enumerate(f, start=1):
      yield number, line


def check_file(path: str, specs: Mapping[str, saved_model.InputSpec]) -> int:
  """Reads the whole file once: the number of users; RulesFileError on the first bad line."""
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise RulesFileError(f"rules file {path}: no such file")
  first_line: Dict[str, int] = {}
  for number, line in _lines(path):
    parsed = parse_line(line, specs, path, number)
    if parsed is None:
      continue
    user = parsed[0]
    if user in first_line:
      raise RulesFileError(f"rules file {path}, line {number}, field '{USER_ID}': user "
                           f"{user!r} again (first on line {first_line[user]}); one line "
                           "per user")
    first_line[user] = number
  return len(first_line)


class ReadUserRules(beam.PTransform):
  """A rules file (checked by ``check_file``) -> (user id, UserRules)."""

  def __init__(self, path: str, specs: Mapping[str, saved_model.InputSpec]):
    super().__init__()
    self._path = path
    self._specs = dict(specs)

  def expand(self, pipeline):
    path, specs = self._path, self._specs
    return (pipeline
            | "Read" >> beam.io.ReadFromText(path)
            | "Parse" >> beam.FlatMap(lambda line: [
                parsed for parsed in [parse_line(line, specs, path, "?")] if parsed]))


def row_values(global_inputs: Mapping[str, Any], users: Sequence[Optional[UserRules]],
               specs: Mapping[str, saved_model.InputSpec]) -> Dict[tuple, Tuple[list, list]]:
  """Rows grouped by their rank-0 input values (one model call each): key -> (row
  positions, merged inputs per row)."""
  groups: Dict[tuple, Tuple[list, list]] = {}
  for position, user in enumerate(users):
    values = merge(global_inputs, user, specs)
    key = tuple(json.dumps(values[name]) for name, spec in sorted(specs.items())
                if spec.rank == 0)
    positions, rows = groups.setdefault(key, ([], []))
    positions.append(position)
    rows.append(values)
  return groups
