"""Calibration and validation data: `.npy` inputs or `.npz` with `x` and optional `y`.

A model with several inputs takes an `.npz` with one array per input, named as the model names
its inputs (`image`, `meta`) or `x0`, `x1`... in the model's order, and optional `y`; from
Python, a list (model order) or a dict by name. In memory such inputs are a dict, name to
array, in the model's input order (:class:`InputSpec`); one input stays a plain array.

Arrays are checked against the model's input: the shape after the batch axis, a real numeric
dtype (no complex, no timedeltas, no strings, no pickled objects), and no NaN or infinity, also
after the cast to the model's input dtype (1e300 in a float64 file is finite, but infinite as
float32); labels too are real numbers, finite even before one-hot rows become indices. Files
are checked from their headers first, before anything is loaded: a `.npy` whose header
promises a terabyte, a compressed `.npz` member that inflates past 256 MiB, or a file that is
not a regular file, is refused in one line. Errors say what was expected and what was received.

>>> import numpy as np
>>> from edgekit.data import check_inputs
>>> check_inputs(np.zeros((4, 8, 8, 1)), (1, 8, 8, 1), "calibration").shape
(4, 8, 8, 1)
"""

from __future__ import annotations

import ast
import math
import os
import stat
import tokenize
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import UsageError

MAX_VALIDATION_SAMPLES = 500
MAX_DATA_BYTES = 4 * 1024**3  # a calibration or validation file larger than this is refused
MAX_LABEL = 2**31 - 1
MAX_UNPACKED_BYTES = 256 * 1024**2  # what a compressed .npz member may inflate to
REAL_KINDS = "biuf"  # bool, int, uint, float: not complex, timedelta, datetime, str, object
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own limit for headers it parses safely
# Calibration fixes every int8 range from these inputs: a file with fewer samples is most
# likely a mistake (one image saved without its batch axis); callers may lower it on request.
MIN_CALIBRATION_SAMPLES = 10


# One input: an array, batch first. Several: {input name: array}, in the model's input order.
Inputs = Any


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name (a key of an `.npz` or dict), shape (batch 1) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


def sample_count(x: Inputs) -> int:
    """How many samples `x` holds (every input holds as many).

    >>> sample_count({"image": np.zeros((3, 4, 4, 1)), "meta": np.zeros((3, 2))})
    3
    """
    if isinstance(x, dict):
        return len(next(iter(x.values()))) if x else 0
    return len(x)


def take(x: Inputs, index: Any) -> Inputs:
    """`x[index]` of every input (a slice or an index array along the batch axis)."""
    if isinstance(x, dict):
        return {name: array[index] for name, array in x.items()}
    return x[index]


def as_float32(x: Inputs) -> Inputs:
    """Every input as float32 (the dtype the float model and quantize_input take)."""
    if isinstance(x, dict):
        return {name: np.asarray(array, np.float32) for name, array in x.items()}
    return np.asarray(x, np.float32)


@dataclass(frozen=True)
class Dataset:
    """Inputs and optional integer labels, with where they came from."""

    x: Inputs
    y: np.ndarray | None
    source: str

    @property
    def n(self) -> int:
        return sample_count(self.x)

    def head(self, n: int) -> Dataset:
        return Dataset(
            take(self.x, slice(0, n)), None if self.y is None else self.y[:n], self.source
        )


def regular_file(path: str | Path, what: str, limit: int = MAX_DATA_BYTES) -> Path:
    """The path, if it names a regular file no larger than `limit` (not a FIFO, not a device
    such as /dev/zero behind a symlink, not a directory)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{what} file {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{what} file {path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} file {path}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{what} file {path}: not a regular file (a device, FIFO or socket)")
    if info.st_size > limit:
        raise UsageError(
            f"{what} file {path}: {info.st_size:,} bytes is over the {limit:,}-byte limit"
        )
    return path


def _npy_header(handle: Any, what: str, path: Path, available: int) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from a .npy header, refusing pickles and sizes the file cannot hold."""
    try:
        fmt = np.lib.format
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(handle)
        else:
            shape, dtype = _npy_header_3_0(handle)
    # A garbage header fails in numpy's tokenizer or literal parser, not only as ValueError.
    except (
        ValueError,
        OSError,
        EOFError,
        SyntaxError,
        TypeError,
        KeyError,
        RecursionError,
        tokenize.TokenError,
    ) as exc:
        raise UsageError(f"{what} file {path}: not a readable NumPy file ({exc})") from None
    if dtype.hasobject:
        raise UsageError(f"{what} file {path}: holds Python objects (pickles are refused)")
    declared = math.prod(shape) * dtype.itemsize
    if declared > available:
        raise UsageError(
            f"{what} file {path}: its header declares {declared:,} bytes of data but the file "
            f"holds {available:,}"
        )
    return shape, dtype


def _npy_header_3_0(handle: Any) -> tuple[tuple, np.dtype]:
    """Format 3.0 is 2.0 with a UTF-8 header; numpy has no public reader for its header."""
    size = int.from_bytes(handle.read(4), "little")
    if size > MAX_NPY_HEADER_BYTES:
        raise ValueError(f"header of {size:,} bytes")
    header = ast.literal_eval(handle.read(size).decode("utf-8"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("the header is not a dict of descr, fortran_order and shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"shape {shape!r}")
    return shape, np.lib.format.descr_to_dtype(header["descr"])


def _check_unpacked_size(member: zipfile.ZipInfo, what: str, path: Path) -> None:
    """Refuse members that inflate past the limits: a 1 MB .npz can unpack to gigabytes."""
    compressed = member.compress_size < member.file_size
    limit = MAX_UNPACKED_BYTES if compressed else MAX_DATA_BYTES
    if member.file_size > limit:
        how = f"from {member.compress_size:,} compressed " if compressed else ""
        raise UsageError(
            f"{what} file {path}: {member.filename} unpacks to {member.file_size:,} bytes "
            f"{how}(limit {limit:,}); save large data uncompressed (np.save or np.savez)"
        )


def npz_names(specs: list[InputSpec] | None, found: list[str]) -> list[str]:
    """The `.npz` array names that hold a model's inputs, in the model's order: `x` for one
    input; for several, the model's input names, else `x0`, `x1`... With the model's inputs
    not known yet (`specs` None), `x` if present, else every array but `y`.

    >>> specs = [InputSpec("image", (1, 4)), InputSpec("meta", (1, 2))]
    >>> npz_names(specs, ["x0", "x1", "y"]), npz_names(specs, ["meta", "image"])
    (['x0', 'x1'], ['image', 'meta'])
    """
    if specs is None:
        return ["x"] if "x" in found else [n for n in found if n != "y"] or ["x"]
    if len(specs) == 1:
        return ["x"]
    named = [spec.name for spec in specs]
    numbered = [f"x{i}" for i in range(len(specs))]
    return named if all(name in found for name in named) else numbered


def check_array_file(path: str | Path, what: str, specs: list[InputSpec] | None = None) -> None:
    """Check a .npy/.npz from its headers only: cheap, and safe on hostile files."""
    path = regular_file(path, what)
    size = path.stat().st_size
    if path.suffix == ".npy":
        if specs is not None and len(specs) > 1:
            raise UsageError(
                f"{what} file {path}: the model has {len(specs)} inputs; pass an .npz with one "
                f"array per input ({', '.join(repr(s.name) for s in specs)}, or x0, x1...)"
            )
        with path.open("rb") as handle:
            _npy_header(handle, what, path, size)
        return
    if path.suffix != ".npz":
        raise UsageError(f"{what} file {path}: expected .npy or .npz")
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n.removesuffix(".npy") for n in archive.namelist()]
            wanted = npz_names(specs, found)
            missing = [name for name in wanted if name not in found]
            if missing:
                if specs is None or len(specs) == 1:
                    need = "an array named 'x'"
                else:
                    need = (
                        f"one array per input, named {', '.join(repr(s.name) for s in specs)}"
                        " or x0, x1..."
                    )
                raise UsageError(
                    f"{what} file {path}: .npz needs {need} (found: {', '.join(found) or 'none'})"
                )
            unused = [name for name in found if name not in (*wanted, "y")]
            if unused and specs is not None:
                raise UsageError(
                    f"{what} file {path}: array(s) {', '.join(map(repr, unused))} are not used "
                    f"(the model's input{'s are' if len(wanted) > 1 else ' is'} "
                    f"{', '.join(map(repr, wanted))}; labels go in 'y'): remove them"
                )
            for name in [*wanted, "y"]:
                if name in found:
                    member = archive.getinfo(f"{name}.npy")
                    _check_unpacked_size(member, what, path)
                    with archive.open(member) as handle:
                        _npy_header(handle, what, path, member.file_size)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise UsageError(f"{what} file {path}: not a readable .npz ({exc})") from None


def read_array_file(
    path: str | Path, what: str, specs: list[InputSpec] | None = None
) -> tuple[Inputs, np.ndarray | None]:
    """Read `.npy` (inputs) or `.npz` (`x`, or one array per input; optional `y`). Pickled
    objects are refused."""
    check_array_file(path, what, specs)
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                wanted = npz_names(specs, archive.files)
                y = archive["y"] if "y" in archive.files else None
                if wanted == ["x"]:
                    return archive["x"], y
                if specs is None:  # the model is not known yet: its inputs by their names
                    return {name: archive[name] for name in wanted}, y
                return {s.name: archive[n] for s, n in zip(specs, wanted, strict=True)}, y
        return np.load(path, allow_pickle=False), None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{what} file {path}: not a readable NumPy file ({exc})") from None


def check_inputs(
    x: Any, input_shape: tuple[int, ...], what: str, dtype: str | None = None
) -> np.ndarray:
    """Validate a batch of inputs for a model whose input is `input_shape` (batch first).

    With `dtype` (the model's input dtype), values are also checked after the cast.
    """
    x = np.asarray(x)
    expected = tuple(input_shape[1:])
    wanted = f"[N, {', '.join(map(str, expected))}]"
    if x.ndim != len(input_shape):
        hint = " (one sample needs its batch axis: x[None])" if x.shape == expected else ""
        raise UsageError(
            f"{what} data has shape {list(x.shape)}, rank {x.ndim}; the model's input is "
            f"{wanted}, rank {len(input_shape)}{hint}"
        )
    if tuple(x.shape[1:]) != expected:
        raise UsageError(f"{what} data has shape {list(x.shape)}; expected {wanted}")
    if x.shape[0] == 0:
        raise UsageError(f"{what} data is empty; expected at least one sample")
    if np.iscomplexobj(x):
        raise UsageError(f"{what} data is complex ({x.dtype}); expected real numbers")
    if x.dtype.kind not in REAL_KINDS:
        raise UsageError(f"{what} data has dtype {x.dtype}; expected a numeric dtype")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise UsageError(f"{what} data contains {bad} NaN or infinite values")
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        with np.errstate(over="ignore", invalid="ignore"):
            cast = x.astype(dtype)
        if not np.all(np.isfinite(cast)):
            bad = int(np.sum(~np.isfinite(cast)))
            largest = float(np.max(np.abs(x.astype(np.float64))))
            raise UsageError(
                f"{what} data: {bad} values (up to {largest:.3g}) overflow the model's {dtype} "
                "input"
            )
    elif dtype is not None and np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        if x.size and (np.min(x) < info.min or np.max(x) > info.max):
            raise UsageError(
                f"{what} data: values outside the model's {dtype} input range "
                f"[{info.min}, {info.max}]"
            )
    return x


def check_labels(y: Any, n: int, what: str) -> np.ndarray:
    """Class indices: integers (or integral floats) in [0, 2^31), one per input; one-hot rows
    become indices."""
    y = np.asarray(y)
    if y.dtype.kind not in REAL_KINDS:
        raise UsageError(f"{what} labels have dtype {y.dtype}; expected integer class indices")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):  # before argmax hides them
        bad = int(np.sum(~np.isfinite(y)))
        raise UsageError(f"{what} labels contain {bad} NaN or infinite values")
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise UsageError(f"{what} labels: {y.shape[0]} labels for {n} inputs")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise UsageError(f"{what} labels must be class indices; received dtype {y.dtype}")
    if y.size and (np.min(y) < 0 or np.max(y) > MAX_LABEL):
        raise UsageError(
            f"{what} labels must be class indices >= 0; received values from {np.min(y):g} "
            f"to {np.max(y):g}"
        )
    return y.astype(np.int64)


def input_specs(model_input: Any, dtype: str | None = None) -> list[InputSpec]:
    """A model's inputs as :class:`InputSpec`: from one shape (and dtype), or a list of specs."""
    if model_input and isinstance(model_input[0], InputSpec):
        return list(model_input)
    return [InputSpec("x", tuple(model_input), dtype or "float32")]


def _by_name(x: Any, specs: list[InputSpec], what: str) -> dict[str, Any]:
    """Several inputs given as a dict (by name) or a list (model order) → {name: array}."""
    names = [s.name for s in specs]
    if isinstance(x, dict) and list(x) == [f"x{i}" for i in range(len(specs))]:
        x = list(x.values())  # an .npz read before the model's input names were known
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        extra = [str(n) for n in x if n not in names]
        if missing or extra:
            raise UsageError(
                f"{what} data names inputs {sorted(map(str, x))}; the model's inputs are "
                f"{names}" + (f" (missing {missing})" if missing else "")
            )
        return {n: x[n] for n in names}
    if isinstance(x, (list, tuple)) and len(x) == len(specs):
        return dict(zip(names, x, strict=True))
    raise UsageError(
        f"{what} data: the model has {len(specs)} inputs ({', '.join(names)}); pass one array "
        "per input (a list in the model's order, or a dict by name), or an .npz with them"
    )


def load_dataset(
    source: Any,
    input_shape: Any,
    what: str,
    limit: int | None = None,
    dtype: str | None = None,
    min_samples: int = 1,
) -> Dataset:
    """Accept a path, an array, or an `(x, y)` pair; return a checked :class:`Dataset` of at
    least `min_samples` inputs.

    `input_shape` is the model's input shape (batch first), or its :class:`InputSpec` list
    when it has several inputs; `x` is then a list (model order) or a dict by input name.
    """
    specs = input_specs(input_shape, dtype)
    if isinstance(source, (str, os.PathLike)):
        x, y = read_array_file(source, what, specs)
        origin = str(source)
    elif isinstance(source, Dataset):  # read earlier: checked again against the loaded model
        x, y, origin = source.x, source.y, source.source
    elif isinstance(source, tuple) and len(source) == 2:
        x, y = source
        origin = "arrays"
    else:
        x, y = source, None
        origin = "array"
    if len(specs) == 1:
        if isinstance(x, dict) and len(x) == 1:
            x = next(iter(x.values()))
        x = check_inputs(x, specs[0].shape, what, specs[0].dtype)
    else:
        x = {
            s.name: check_inputs(array, s.shape, f"{what} input '{s.name}'", s.dtype)
            for s, array in zip(specs, _by_name(x, specs, what).values(), strict=True)
        }
        counts = {name: len(array) for name, array in x.items()}
        if len(set(counts.values())) > 1:
            raise UsageError(f"{what} data: the inputs hold different sample counts {counts}")
    n = sample_count(x)
    if n < min_samples:
        raise UsageError(
            f"{what} data {origin} has {n} samples; expected at least {min_samples} "
            f"representative inputs (100-500 is typical), or pass --min-calibration-samples "
            f"{n} to use these"
        )
    if y is not None:
        y = check_labels(y, n, what)
    data = Dataset(x, y, origin)
    return data.head(limit) if limit else data


def random_calibration(input_shape: Any, n: int = 100, seed: int = 0) -> Dataset:
    """Uniform [0, 1) inputs. Quantization ranges from these make accuracy figures meaningless.

    `input_shape` is one shape, or the model's :class:`InputSpec` list (one array each).
    """
    rng = np.random.default_rng(seed)
    specs = input_specs(input_shape)
    arrays = {s.name: rng.random((n, *s.shape[1:]), dtype=np.float32) for s in specs}
    x = arrays if len(specs) > 1 else arrays[specs[0].name]
    return Dataset(x, None, "random")
