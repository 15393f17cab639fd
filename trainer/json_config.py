"""JSON round trip shared by the config dataclasses (ModelConfig, RetrievalConfig, PretrainConfig)."""

import dataclasses
import json


class JsonConfig:
  """Mixin for a dataclass: ``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json``.

  ``from_dict`` refuses unknown fields with a message naming them and the known
  ones, so a typo in a pipeline's JSON config fails at once instead of being ignored.
  """

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_json(cls, text: str):
    return cls.from_dict(json.loads(text))

  @classmethod
  def from_dict(cls, values: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)
