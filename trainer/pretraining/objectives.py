"""The registry of pre-training objectives: name -> ``PretrainConfig`` weight field and loss layer.

TensorFlow-free, so configs and the benchmark list the objectives without loading it;
each objective's module registers its loss layer under its name with ``@register``.
"""

from typing import Callable, Dict, Tuple, TypeVar

MASKED_ITEM = "masked_item"     # trainer.pretraining.masked_item
NEXT_ITEM = "next_item"         # trainer.pretraining.next_item
ATTRIBUTE = "attribute"         # trainer.pretraining.attributes
CONTRASTIVE = "contrastive"     # trainer.pretraining.contrastive
CLUSTERING = "clustering"       # trainer.pretraining.clustering
# Every objective, in the order models build them and report their losses.
NAMES: Tuple[str, ...] = (MASKED_ITEM, NEXT_ITEM, ATTRIBUTE, CONTRASTIVE, CLUSTERING)

_LAYERS: Dict[str, type] = {}
Layer = TypeVar("Layer", bound=type)


def weight_field(name: str) -> str:
  """The ``PretrainConfig`` field holding an objective's weight, e.g. ``masked_item_weight``."""
  if name not in NAMES:
    raise ValueError(f"Unknown pre-training objective {name!r}; known: {NAMES}")
  return f"{name}_weight"


WEIGHT_FIELDS: Tuple[str, ...] = tuple(weight_field(name) for name in NAMES)


def register(name: str) -> Callable[[Layer], Layer]:
  """Class decorator: registers the loss layer (a ``batch.Objective``) of objective ``name``."""
  weight_field(name)   # the name must be declared in NAMES

  def decorator(layer: Layer) -> Layer:
    _LAYERS[name] = layer
    return layer
  return decorator


def layer_class(name: str) -> type:
  """The loss layer registered for ``name`` (``trainer.pretraining.model`` imports them all)."""
  if name not in _LAYERS:
    raise ValueError(f"No loss layer registered for pre-training objective {name!r}; "
                     f"import its module (trainer.pretraining.model imports them all)")
  return _LAYERS[name]
