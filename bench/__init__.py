import trainer  # pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
