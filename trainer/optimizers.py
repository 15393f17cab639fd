"""Adam as a TrainingSchedule names it: tf_keras's optimizer or TF's fused kernel (the
legacy optimizer), one update rule; building either's slots and reading its moments."""

from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

ADAMS = {
    "adam": tf.keras.optimizers.Adam,
    "fused_adam": tf.keras.optimizers.legacy.Adam,
}

Moments = Tuple[tf.Variable, tf.Variable]


def make(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
  """The Adam ``name`` (a key of ``ADAMS``) at ``learning_rate``."""
  return ADAMS[name](learning_rate)


def _is_legacy(optimizer) -> bool:
  return isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer)


def is_adam(optimizer) -> bool:
  """Whether ``optimizer`` is one of ``ADAMS``."""
  return isinstance(optimizer, tuple(ADAMS.values()))


def is_built(optimizer) -> bool:
  """Whether ``optimizer`` has its slots (it has stepped, or ``build`` ran)."""
  if _is_legacy(optimizer):
    return bool(optimizer._slots)   # pylint: disable=protected-access
  return bool(getattr(optimizer, "_built", False))


def build(optimizer, variables: Sequence[tf.Variable]) -> None:
  """Creates ``optimizer``'s step counter and slots for ``variables`` now, so the first
  training step is traced once rather than twice (variable creation)."""
  if _is_legacy(optimizer):
    optimizer._create_all_weights(variables)   # pylint: disable=protected-access
  elif hasattr(optimizer, "build"):
    optimizer.build(variables)


def moments(optimizer, weights: Sequence[tf.Variable]) -> List[Optional[Moments]]:
  """Adam's (first, second) moment slots of each of ``weights``, None for a weight it
  has none for (tf_keras's Adam has no public accessor: its slot lists are read)."""
  if _is_legacy(optimizer):
    return [_legacy_moments(optimizer, w) for w in weights]
  index, m, v = (optimizer._index_dict, optimizer._momentums,  # pylint: disable=protected-access
                 optimizer._velocities)  # pylint: disable=protected-access
  keys = [index.get(optimizer._var_key(w)) for w in weights]  # pylint: disable=protected-access
  return [None if k is None else (m[k], v[k]) for k in keys]


def _legacy_moments(optimizer, weight: tf.Variable) -> Optional[Moments]:
  try:
    return optimizer.get_slot(weight, "m"), optimizer.get_slot(weight, "v")
  except KeyError:   # no slots for this weight
    return None
