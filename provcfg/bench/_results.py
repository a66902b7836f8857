"""The results of a run, and their JSON form (``--format json``, history lines, baselines).

A ratio's key is ``CASE/CONTENDER`` (``lookup.provider/rt.provider``): the same key
in a run, in the history and in a baseline, so runs compare across machines and
months. Everything here is plain data; nothing measures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provcfg._errors import ProvcfgError
from provcfg.bench._stats import Estimate

__all__ = [
    "BASELINE_KIND",
    "FORMAT",
    "RUN_KIND",
    "BaselineEntry",
    "CaseResult",
    "ContenderResult",
    "RunResult",
    "load_ratios",
]

FORMAT = 1
RUN_KIND = "provcfg-bench-run"
BASELINE_KIND = "provcfg-bench-baseline"


@dataclass
class ContenderResult:
    """Every sample one contender gave: seconds per operation, and the extras."""

    name: str
    role: str
    label: str
    loops: int
    samples: list[float] = field(default_factory=list)
    op_seconds: list[float] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class CaseResult:
    """One case of a run: its contenders' samples and each contender's ratio to the reference."""

    name: str
    title: str
    group: str
    threshold: float
    rate_unit: str | None = None
    note: str = ""
    reference: str | None = None
    budgets: list[dict[str, Any]] = field(default_factory=list)
    contenders: list[ContenderResult] = field(default_factory=list)
    ratios: dict[str, Estimate] = field(default_factory=dict)
    differences: dict[str, Estimate] = field(default_factory=dict)
    rounds: int = 0
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None
    spin_seconds: float | None = None

    def contender(self, name: str) -> ContenderResult:
        """The contender called ``name``.

        Raises:
            KeyError: no such contender in this case.
        """
        for c in self.contenders:
            if c.name == name:
                return c
        raise KeyError(name)

    def role(self, name: str) -> str:
        """The role of contender ``name``."""
        return self.contender(name).role

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        data = asdict(self)
        data["ratios"] = {k: v.as_dict() for k, v in self.ratios.items()}
        data["differences"] = {k: v.as_dict() for k, v in self.differences.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseResult:
        """Read the JSON form back."""
        values = dict(data)
        values["contenders"] = [ContenderResult(**c) for c in data.get("contenders", [])]
        values["ratios"] = {k: Estimate.from_dict(v) for k, v in data.get("ratios", {}).items()}
        values["differences"] = {
            k: Estimate.from_dict(v) for k, v in data.get("differences", {}).items()
        }
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    """What a comparison needs of one ratio: its estimate, its role and the case's threshold."""

    estimate: Estimate
    role: str
    threshold: float
    rate: bool = False
    reference: str = ""
    """The contender the ratio is to; a ratio whose reference changed is not comparable."""


@dataclass
class RunResult:
    """One ``provcfg bench`` run."""

    suite: str
    started: str
    finished: str = ""
    env: dict[str, Any] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None

    def ratio_entries(self) -> dict[str, BaselineEntry]:
        """Every non-reference contender's ratio, keyed ``CASE/CONTENDER``."""
        out: dict[str, BaselineEntry] = {}
        for case in self.cases:
            for name, estimate in case.ratios.items():
                if math.isnan(estimate.median):
                    continue
                out[f"{case.name}/{name}"] = BaselineEntry(
                    estimate,
                    case.role(name),
                    case.threshold,
                    case.rate_unit is not None,
                    case.reference or "",
                )
        return out

    def case(self, name: str) -> CaseResult | None:
        """The case called ``name``, or ``None``."""
        return next((c for c in self.cases if c.name == name), None)

    def iter_cases(self) -> Iterator[CaseResult]:
        """The cases that ran (not skipped, no error)."""
        return (c for c in self.cases if c.skipped is None and c.error is None)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``--format json``; one history line)."""
        return {
            "format": FORMAT,
            "kind": RUN_KIND,
            "suite": self.suite,
            "started": self.started,
            "finished": self.finished,
            "command": self.command,
            "env": self.env,
            "ratios": {k: _entry_dict(v) for k, v in self.ratio_entries().items()},
            "cases": [c.as_dict() for c in self.cases],
            "calibration": self.calibration,
        }

    def baseline_dict(self) -> dict[str, Any]:
        """The portable baseline: ratios only, with the run's environment for the record."""
        return {
            "format": FORMAT,
            "kind": BASELINE_KIND,
            "suite": self.suite,
            "created": self.finished or self.started,
            "env": self.env,
            "ratios": {k: _entry_dict(v) for k, v in self.ratio_entries().items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """Read the JSON form back (a history line or a ``--format json`` file)."""
        return cls(
            suite=str(data.get("suite", "")),
            started=str(data.get("started", "")),
            finished=str(data.get("finished", "")),
            env=dict(data.get("env", {})),
            cases=[CaseResult.from_dict(c) for c in data.get("cases", [])],
            command=list(data.get("command", [])),
            calibration=data.get("calibration"),
        )


def _entry_dict(entry: BaselineEntry) -> dict[str, Any]:
    return {
        **entry.estimate.as_dict(),
        "role": entry.role,
        "threshold": entry.threshold,
        "rate": entry.rate,
        "reference": entry.reference,
    }


def load_ratios(path: str | Path) -> tuple[dict[str, BaselineEntry], dict[str, Any]]:
    """Read the ratios of a baseline or a run JSON file, and the file's environment record.

    Raises:
        ProvcfgError: the file cannot be read, is not JSON, or holds no ratios; the
            message names the file and how to make one.
    """
    path = Path(path)
    hint = f"make one with: provcfg bench --suite full --baseline-out {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvcfgError(f"cannot read baseline {path}: {exc.strerror}; {hint}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProvcfgError(f"{path}: not a JSON baseline ({exc}); {hint}") from None
    ratios = data.get("ratios") if isinstance(data, dict) else None
    if not isinstance(ratios, dict):
        raise ProvcfgError(f"{path}: no 'ratios' object: not a provcfg bench file; {hint}")
    out: dict[str, BaselineEntry] = {}
    for key, value in ratios.items():
        try:
            out[key] = BaselineEntry(
                Estimate.from_dict(value),
                str(value.get("role", "subject")),
                float(value.get("threshold", 0.10)),
                bool(value.get("rate", False)),
                str(value.get("reference", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProvcfgError(
                f"{path}: ratio {key!r} is malformed (needs median, low, high, n); {hint}"
            ) from None
    return out, dict(data.get("env", {}))
