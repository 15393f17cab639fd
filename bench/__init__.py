"""Benchmarks (not installed with the package); importing trainer first selects Keras 2."""

import trainer  # pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
