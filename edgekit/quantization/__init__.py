"""edgekit's int8 engine: calibration methods, bias correction, graph rewrites, per-layer
analysis and mixed precision, on top of the TFLite converter's own quantizer.

- :mod:`.calibration`: activation histograms and ranges (minmax, percentile, mse, kl);
- :mod:`.engine`: calibrated float model → ranges → the converter's MLIR quantizer → bias
  correction;
- :mod:`.analysis`: per-layer SQNR, ranges, clipping and sensitivity, with a chart;
- :mod:`.search`: `--optimize accuracy` and mixed precision.

The whole of it for one model and target (`edgekit analyze`) is :func:`edgekit.analyze`,
which uses the deploy stages.

>>> from edgekit.quantization.calibration import parse_method
>>> parse_method("percentile:99.9")
('percentile', 99.9)
"""

from __future__ import annotations
