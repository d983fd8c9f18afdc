"""A float model's intermediate tensors on calibration data, in as few LiteRT runs as memory
allows (learned rounding and equalisation read them).

>>> from edgekit.quantization.activations import kept_activations    # doctest: +SKIP
>>> kept_activations(float_model, x, [3, 7])[3].shape                 # doctest: +SKIP
(500, 1, 16, 16, 32)
>>> batches([3, 3, 5, 9], budget=6)  # tensors of 3, 3, 5 and 9 bytes: one run per group
[[0, 1], [2], [3]]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgekit.runtimes.litert import input_feeds, run_isolated
from edgekit.tflite_model import TFLiteModel

MEMORY_BYTES = 1 << 30  # float activations held at once


def batches(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive positions of `sizes` grouped so each group stays within `budget` (a size
    over it alone makes its own group)."""
    groups: list[list[int]] = []
    total = 0
    for position, size in enumerate(sizes):
        if not groups or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(position)
        total += size
    return groups


def kept_activations(
    model: TFLiteModel, x: np.ndarray, indices: Iterable[int], budget: int = MEMORY_BYTES
) -> dict[int, np.ndarray]:
    """{tensor index: (samples, *shape)} for `indices`, run in groups of at most `budget`
    bytes (one run when they fit), in LiteRT's builtin kernels."""
    wanted = list(dict.fromkeys(indices))
    samples = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    sizes = [4 * samples * max(model.tensors[i].elements, 1) for i in wanted]
    feeds = input_feeds(model, x)
    kept: dict[int, np.ndarray] = {}
    for batch in batches(sizes, budget):
        group = [wanted[i] for i in batch]
        outputs, got = run_isolated(model, feeds, "builtin", 2, keep=tuple(group))
        kept.update({i: got[i] if i in got else outputs[i] for i in group})
    return kept
