"""One alert transition (firing or resolved): what subscribers, logs and Alertmanager get."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AlertEvent"]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert transition: ``state`` is ``firing`` or ``resolved``.

    ``since`` is the Unix time the condition began to hold (for a resolved alert too,
    so ``since``..``at`` spans the whole episode); ``at`` is the Unix time of this
    transition. ``value`` is the metric's value at that evaluation (NaN when the window
    had too few requests to read one), ``threshold`` the bound it was compared with.
    """

    name: str
    state: Literal["firing", "resolved"]
    value: float
    threshold: float
    provider: str | None
    pool: str | None
    metric: str
    severity: str
    since: float
    at: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (``/alerts``, logs)."""
        return {
            "name": self.name,
            "state": self.state,
            "value": None if math.isnan(self.value) else self.value,
            "threshold": self.threshold,
            "provider": self.provider,
            "pool": self.pool,
            "metric": self.metric,
            "severity": self.severity,
            "since": self.since,
            "at": self.at,
        }
