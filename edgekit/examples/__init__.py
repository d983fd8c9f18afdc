"""Built-in examples that need no download: `digits` (scikit-learn's bundled 8x8 digits)."""

from edgekit.examples.digits import Example, load_example

EXAMPLES = ("digits",)

__all__ = ["EXAMPLES", "Example", "load_example"]
