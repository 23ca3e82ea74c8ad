"""A few input images from a dataset spec, for conversion checks (parity, int8 calibration)."""

from __future__ import annotations

import numpy as np

from edgebnn.data.spec import DataSpec


def random_inputs(input_shape, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` inputs uniform in [-1, 1] at ``input_shape`` (H, W, C)."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *input_shape)).astype("float32")


def sample_inputs(spec: DataSpec | None, input_shape, *, n: int = 8, split: str = "val",
                  preprocessing: dict | None = None) -> np.ndarray:
    """``n`` inputs from the dataset ``spec`` (random in [-1, 1] when None or ``synthetic``).

    The validation split feeds parity; ``split="train"`` takes int8 calibration inputs apart
    from them. Images go through the same normalization as in training.
    """
    kind = spec.kind if spec else None
    if kind in (None, "synthetic"):
        return random_inputs(input_shape, n, seed=0 if split == "val" else 1)
    if kind == "digits":
        from edgebnn.data.digits import digits_arrays

        x_train, _, x_val, _ = digits_arrays(tuple(input_shape))
        return (x_val if split == "val" else x_train)[:n]
    from edgebnn.data.pipelines import data_errors, load_dataset

    with data_errors():
        data = load_dataset(spec, input_shape=input_shape, batch_size=n, preprocessing=preprocessing)
        batches = data.val if split == "val" else data.train
        images = next(iter(batches))[0].numpy()
    return images.astype("float32")
