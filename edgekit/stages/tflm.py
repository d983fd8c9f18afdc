"""The TFLM export stage: the measured tensor arena and the generated C sources.

>>> from edgekit.stages.tflm import export_tflm                                  # doctest: +SKIP
>>> export_tflm(deployed, "digits").arena.tensor_arena_bytes                     # doctest: +SKIP
22544
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.converters.tflm import tflm_sources
from edgekit.errors import RuntimeTimeout, ToolError
from edgekit.runtimes.tflm import ArenaMeasurement, measure_arena, missing_ops
from edgekit.tflite_model import TFLiteModel

ARENA_NOTE = (
    "a C++ MicroInterpreter needs a few hundred bytes less; a 32-bit MCU less again (4-byte "
    "pointers): with TFLM's reference kernels kTensorArenaSize is an upper bound on the "
    "device, but optimized kernels (CMSIS-NN) may ask for larger scratch buffers: the "
    "firmware step (--tflm-dir) measures the 32-bit arena and raises it when needed"
)


@dataclass(frozen=True)
class TflmExport:
    """A measured arena and the generated sources (file name → text), or why there are none."""

    arena: ArenaMeasurement | None = None
    sources: dict[str, str] = field(default_factory=dict)
    missing_ops: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.arena is not None and self.error is None

    @property
    def detail(self) -> str:
        """One line for the step: the arena figures, or why there is none."""
        arena = self.arena
        if arena is None or self.error:
            return self.error or ""
        return (
            f"arena {arena.minimum_bytes:,} B measured minimum + {arena.margin_bytes} B margin "
            f"({arena.attempts} interpreter runs, 64-bit host); activation lower bound "
            f"{arena.activation_lower_bound_bytes:,} B"
        )


def export_tflm(model: TFLiteModel, name: str, sources: bool = True) -> TflmExport:
    """Measure the arena with TFLM and generate the C sources (`sources=False`: arena only).

    An op TFLM has no kernel for gives `missing_ops` (and an error) without running TFLM.
    """
    lacking = tuple(missing_ops(model))
    if lacking:
        return TflmExport(missing_ops=lacking, error=f"TFLM has no kernel for {', '.join(lacking)}")
    try:
        arena = measure_arena(model)
    except RuntimeTimeout as exc:
        loops = [op for op in model.operators if op.name == "WHILE"]
        hint = (
            f" (op #{loops[0].index} WHILE: a loop TFLM did not end; recurrent layers such as "
            "GRU and LSTM built with unroll=True have no loop)"
            if loops
            else ""
        )
        return TflmExport(error=f"{exc}{hint}")
    except ToolError as exc:
        return TflmExport(error=str(exc))
    files = tflm_sources(model, name, arena) if sources else {}
    return TflmExport(arena=arena, sources=files)
