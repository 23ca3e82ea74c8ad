"""Datasets: the TensorFlow-free spec (``spec``), the ``tf.data`` pipelines (``pipelines``: one module per dataset, their shared parts in ``dataset``), augmentation."""
