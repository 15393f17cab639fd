"""Custom TFX components; importing ``trainer`` first selects Keras 2 before TensorFlow loads."""

import trainer  # pylint: disable=unused-import  (selects Keras 2)
