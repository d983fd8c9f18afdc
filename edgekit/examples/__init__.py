"""Built-in examples that need no download.

- `digits`: a small CNN on scikit-learn's bundled 8x8 digits (the quick start);
- `resnet8`, `mobilenet`, `dscnn`, `autoencoder`: reference models with the structure real
  edge models have (residual adds, depthwise convs, global pooling, a dense autoencoder),
  trained on photo patches and synthetic audio (:mod:`edgekit.examples.zoo`).

>>> EXAMPLES
('digits', 'resnet8', 'mobilenet', 'dscnn', 'autoencoder')
"""

from edgekit.examples.digits import Example, load_example

EXAMPLES = ("digits", "resnet8", "mobilenet", "dscnn", "autoencoder")

__all__ = ["EXAMPLES", "Example", "load_example"]
