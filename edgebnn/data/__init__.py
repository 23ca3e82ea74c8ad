"""Datasets: the TensorFlow-free spec parser (``spec``), the ``tf.data`` pipelines, augmentation."""
