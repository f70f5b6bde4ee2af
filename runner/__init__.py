"""Flight recorder and hermetic replay runner for AI code-debugging agents."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
