"""Calibration and validation data: `.npy` inputs or `.npz` with `x` and optional `y`.

Arrays are checked against the model's input: the shape after the batch axis, a numeric dtype,
and no NaN or infinity. Errors say what was expected and what was received.

>>> import numpy as np
>>> from edgekit.data import check_inputs
>>> check_inputs(np.zeros((4, 8, 8, 1)), (1, 8, 8, 1), "calibration").shape
(4, 8, 8, 1)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError

MAX_VALIDATION_SAMPLES = 500


@dataclass(frozen=True)
class Dataset:
    """Inputs and optional integer labels, with where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    source: str

    def head(self, n: int) -> Dataset:
        return Dataset(self.x[:n], None if self.y is None else self.y[:n], self.source)


def read_array_file(path: str | Path, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Read `.npy` (inputs) or `.npz` (`x`, optional `y`). Pickled objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{what} file {path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise EdgekitError(
                        f"{what} file {path}: .npz needs an array named 'x' "
                        f"(found: {', '.join(archive.files) or 'none'})"
                    )
                return archive["x"], (archive["y"] if "y" in archive.files else None)
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
    except EdgekitError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise EdgekitError(f"{what} file {path}: not a readable NumPy file ({exc})") from None
    raise EdgekitError(f"{what} file {path}: expected .npy or .npz")


def check_inputs(x: Any, input_shape: tuple[int, ...], what: str) -> np.ndarray:
    """Validate a batch of inputs for a model whose input is `input_shape` (batch first)."""
    x = np.asarray(x)
    expected = tuple(input_shape[1:])
    if x.shape == expected:
        x = x[None]
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != expected:
        raise EdgekitError(
            f"{what} data has shape {list(x.shape)}; expected [N, {', '.join(map(str, expected))}]"
        )
    if x.shape[0] == 0:
        raise EdgekitError(f"{what} data is empty; expected at least one sample")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise EdgekitError(f"{what} data has dtype {x.dtype}; expected a numeric dtype")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise EdgekitError(f"{what} data contains {bad} NaN or infinite values")
    return x


def check_labels(y: Any, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise EdgekitError(f"{what} labels: {y.shape[0]} labels for {n} inputs")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise EdgekitError(f"{what} labels must be class indices; received dtype {y.dtype}")
        y = y.astype(np.int64)
    return y


def load_dataset(
    source: Any, input_shape: tuple[int, ...], what: str, limit: int | None = None
) -> Dataset:
    """Accept a path, an array, or an `(x, y)` pair; return a checked :class:`Dataset`."""
    if isinstance(source, (str, Path)):
        x, y = read_array_file(source, what)
        origin = str(source)
    elif isinstance(source, tuple) and len(source) == 2:
        x, y = source
        origin = "arrays"
    else:
        x, y = source, None
        origin = "array"
    x = check_inputs(x, input_shape, what)
    if y is not None:
        y = check_labels(y, x.shape[0], what)
    data = Dataset(x, y, origin)
    return data.head(limit) if limit else data


def random_calibration(input_shape: tuple[int, ...], n: int = 100, seed: int = 0) -> Dataset:
    """Uniform [0, 1) inputs. Quantization ranges from these make accuracy figures meaningless."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *input_shape[1:]), dtype=np.float32)
    return Dataset(x, None, "random")
