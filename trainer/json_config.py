"""JSON round trip and checks shared by the config dataclasses (ModelConfig, PretrainConfig, ...).

A section's keys go under its name or flat: ``{"epochs": 40}`` is a ``schedule`` key.
"""

import dataclasses
import functools
import json
import typing
from typing import Dict, Optional


def literal_choices(annotation) -> Optional[tuple]:
  """The values a ``Literal[...]`` annotation allows, else None."""
  if typing.get_origin(annotation) is typing.Literal:
    return typing.get_args(annotation)
  return None


@functools.lru_cache(maxsize=None)
def _field_types(cls) -> Dict[str, object]:
  hints = typing.get_type_hints(cls)
  return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_section(annotation) -> bool:
  return isinstance(annotation, type) and issubclass(annotation, JsonConfig)


def _choice_error(cls, name: str, annotation, value) -> Optional[str]:
  """Why ``value`` is not a choice of a ``Literal`` (or tuple-of-``Literal``) field, else None."""
  allowed = literal_choices(annotation)
  if allowed is not None:
    return None if value in allowed else (f"{cls.__name__}.{name} must be one of {allowed}; "
                                          f"got {value!r}")
  if typing.get_origin(annotation) in (tuple, list) and typing.get_args(annotation):
    allowed = literal_choices(typing.get_args(annotation)[0])
    if allowed is not None and not set(value) <= set(allowed):
      return f"{cls.__name__}.{name} must hold only {allowed}; got {list(value)}"
  return None


class JsonConfig:
  """Mixin for a dataclass: ``to_dict`` / ``to_json`` / ``from_dict`` / ``from_json``.

  ``from_dict`` refuses unknown keys with a message naming them and the known
  ones, so a typo in a pipeline's JSON config fails at once instead of being ignored.
  Every field annotated ``Literal[...]`` (or ``Tuple[Literal[...], ...]``) is checked
  against its choices on construction; a subclass puts its other checks in ``validate``.
  """

  def __post_init__(self):
    for name, annotation in _field_types(type(self)).items():
      error = _choice_error(type(self), name, annotation, getattr(self, name))
      if error:
        raise ValueError(error)
    self.validate()

  def validate(self) -> None:
    """Checks beyond the choices of ``Literal`` fields; raises ValueError (override)."""

  def to_dict(self) -> dict:
    """The JSON object of this config, sections nested."""
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_json(cls, text: str):
    return cls.from_dict(json.loads(text))

  @classmethod
  def sections(cls) -> Dict[str, type]:
    """Field name -> config type of the fields that are configs themselves."""
    return {name: t for name, t in _field_types(cls).items() if _is_section(t)}

  @classmethod
  def flat_keys(cls) -> Dict[str, str]:
    """Key -> section, of the section fields that may be written at the top level."""
    owners: Dict[str, str] = {}
    for section, section_type in cls.sections().items():
      for f in dataclasses.fields(section_type):
        if f.name in owners or f.name in _field_types(cls):
          raise TypeError(f"{cls.__name__}: field {f.name!r} of section {section!r} clashes "
                          "with another field, so it cannot be written flat")
        owners[f.name] = section
    return owners

  @classmethod
  def from_dict(cls, values: dict):
    """The config of a JSON object: fields, and section fields flat or nested (module doc)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    owners = cls.flat_keys()
    unknown = sorted(set(values) - set(fields) - set(owners))
    if unknown:
      raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; "
                       f"known: {sorted(set(fields) | set(owners))}")
    sections = cls.sections()
    kwargs = {k: v for k, v in values.items() if k in fields and k not in sections}
    for name, section_type in sections.items():
      nested = values.get(name, {})
      if not isinstance(nested, dict):
        raise ValueError(f"{cls.__name__}.{name} must be a JSON object; got {nested!r}")
      flat = {k: v for k, v in values.items() if owners.get(k) == name}
      both = sorted(set(flat) & set(nested))
      if both:
        raise ValueError(f"{cls.__name__}: {both} given both at the top level and under "
                         f"{name!r}")
      if name in values or flat:
        kwargs[name] = section_type.from_dict(
            {**_default(fields[name]), **nested, **flat})
    return cls(**kwargs)


def _default(field: dataclasses.Field) -> dict:
  """The JSON object of a section field's default ({} if it has none)."""
  if field.default_factory is not dataclasses.MISSING:
    return field.default_factory().to_dict()
  return {} if field.default is dataclasses.MISSING else field.default.to_dict()

