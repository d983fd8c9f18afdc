"""What each runtime can run and how edgekit drives it: one place per runtime.

- :mod:`edgekit.runtimes.tflm`: TensorFlow Lite Micro (op table derived from TFLM's resolver,
  the `tflite_micro` interpreter, arena measurement);
- :mod:`edgekit.runtimes.litert`: the LiteRT interpreter (optimised, builtin and reference
  kernels);
- :mod:`edgekit.runtimes.edgetpu`: the Edge TPU compiler's published mapping rules.

Every call that runs native code on user bytes goes through :mod:`edgekit.isolation`.
"""
