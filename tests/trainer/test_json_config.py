"""The JSON mapping every config shares: sections flat or nested, unknown keys, Literal choices."""

import dataclasses
from typing import Literal, Tuple

import pytest

from trainer.json_config import JsonConfig


@dataclasses.dataclass
class Shape(JsonConfig):
  width: int = 4
  mode: Literal["a", "b"] = "a"


@dataclasses.dataclass
class Run(JsonConfig):
  steps: int = 10
  rate: float = 0.1


@dataclasses.dataclass
class Whole(JsonConfig):
  shape: Shape = dataclasses.field(default_factory=Shape)
  run: Run = dataclasses.field(default_factory=lambda: Run(steps=3))
  tags: Tuple[Literal["x", "y"], ...] = ("x",)
  patience: int = 0


def test_section_keys_may_be_flat_or_nested_and_mean_the_same():
  flat = Whole.from_dict({"width": 8, "rate": 0.5, "patience": 2})
  nested = Whole.from_dict({"shape": {"width": 8}, "run": {"rate": 0.5}, "patience": 2})
  mixed = Whole.from_dict({"shape": {"width": 8}, "rate": 0.5, "patience": 2})
  assert flat == nested == mixed == Whole(Shape(width=8), Run(steps=3, rate=0.5), patience=2)


def test_a_section_keeps_its_fields_default_not_its_types():
  assert Whole.from_dict({"rate": 0.5}).run.steps == 3   # Whole's default Run, not Run()


def test_to_dict_writes_sections_nested_and_round_trips():
  config = Whole.from_dict({"width": 8, "steps": 5, "tags": ["x", "y"]})
  assert config.to_dict()["shape"] == {"width": 8, "mode": "a"}
  assert Whole.from_json(config.to_json()) == Whole.from_dict(config.to_dict())


def test_unknown_key_is_named_with_the_known_ones():
  with pytest.raises(ValueError, match=r"Unknown Whole field\(s\) \['widht'\]; known: .*'width'"):
    Whole.from_dict({"widht": 8})
  with pytest.raises(ValueError, match=r"Unknown Shape field\(s\) \['rate'\]"):
    Whole.from_dict({"shape": {"rate": 0.5}})


def test_a_key_given_flat_and_nested_is_refused():
  with pytest.raises(ValueError, match=r"\['width'\] given both at the top level and under"):
    Whole.from_dict({"width": 8, "shape": {"width": 16}})
  with pytest.raises(ValueError, match="Whole.shape must be a JSON object"):
    Whole.from_dict({"shape": 8})


def test_literal_fields_are_checked_on_construction():
  with pytest.raises(ValueError, match=r"Shape.mode must be one of \('a', 'b'\); got 'c'"):
    Shape(mode="c")
  with pytest.raises(ValueError, match="Shape.mode must be one of"):
    Whole.from_dict({"mode": "c"})
  with pytest.raises(ValueError, match=r"Whole.tags must hold only \('x', 'y'\); got \['x', 'z'\]"):
    Whole(tags=("x", "z"))


def test_a_section_field_clashing_with_another_cannot_be_written_flat():

  @dataclasses.dataclass
  class Clash(JsonConfig):
    shape: Shape = dataclasses.field(default_factory=Shape)
    width: int = 1

  with pytest.raises(TypeError, match="'width' of section 'shape' clashes"):
    Clash.from_dict({})
