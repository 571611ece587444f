"""gage: stage and run machine-learning operations reproducibly.

The stable public API is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"
