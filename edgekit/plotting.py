"""matplotlib for edgekit's charts: headless (Agg), and a one-line error when it is missing."""

from __future__ import annotations

from typing import Any

from edgekit.errors import UsageError

MISSING = "charts need matplotlib (pip install 'edgekit[plot]')"


def available() -> bool:
    """matplotlib imports (charts a user did not ask for are skipped without it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend (no display needed).

    >>> pyplot().__name__
    'matplotlib.pyplot'
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(MISSING) from None
    return plt
