"""The median stopping rule, shared by every worker through the coordinator.

A running trial is stopped after an epoch when its best objective so far is worse
than the median of the completed trials' best-so-far values at that same epoch
(Golovin et al., "Google Vizier", 2017, with best-so-far in place of running means).
Pure bookkeeping: the coordinator feeds it the epochs workers report.
"""

from __future__ import annotations

import bisect
from typing import Dict, List, Optional


class MedianStoppingRule:
    def __init__(self, direction: str = "min", min_completed_trials: int = 3, min_epochs: int = 1):
        if direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
        self.direction = direction
        self.min_completed_trials = min_completed_trials
        self.min_epochs = min_epochs
        self._running: Dict[str, Dict[int, float]] = {}  # trial -> epoch -> best so far
        self._completed: Dict[str, Dict[int, float]] = {}
        # epoch -> the completed trials' best-so-far values there, sorted: a report costs
        # a lookup, not a sort of every completed trial.
        self._sorted: Dict[int, List[float]] = {}
        self._stopped = set()

    @classmethod
    def from_config(cls, spec: Optional[dict], direction: str) -> Optional["MedianStoppingRule"]:
        return None if spec is None else cls(direction, **spec)

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b

    def report(self, trial_id: str, epoch: int, value: Optional[float]) -> bool:
        """Records one epoch's objective (None: not finite); True when the trial should stop now."""
        if trial_id in self._stopped:
            return True
        curve = self._record(trial_id, epoch, value)
        if epoch + 1 < self.min_epochs:
            return False
        median = self.median_at(epoch)
        # No value (NaN/inf: diverged) counts as worse than any median.
        if median is not None and (epoch not in curve or self._better(median, curve[epoch])):
            self._stopped.add(trial_id)
            return True
        return False

    def _record(self, trial_id: str, epoch: int, value: Optional[float]) -> Dict[int, float]:
        curve = self._running.setdefault(trial_id, {})
        if value is not None:
            earlier = [v for e, v in curve.items() if e <= epoch]
            curve[epoch] = value if not earlier else _best(earlier + [value], self.direction)
        return curve

    def median_at(self, epoch: int) -> Optional[float]:
        """Median best-so-far of completed trials that reached `epoch`, or None if too few."""
        values = self._sorted.get(epoch, ())
        n = len(values)
        if n < self.min_completed_trials:
            return None
        return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

    def complete(self, trial_id: str) -> None:
        """A trial ended normally: its curve becomes part of the reference."""
        curve = self._running.pop(trial_id, None)
        self._stopped.discard(trial_id)
        if curve:
            for epoch, value in self._completed.pop(trial_id, {}).items():  # completed again
                values = self._sorted[epoch]
                del values[bisect.bisect_left(values, value)]
            self._completed[trial_id] = curve
            for epoch, value in curve.items():
                bisect.insort(self._sorted.setdefault(epoch, []), value)

    def discard(self, trial_id: str) -> None:
        """A trial failed or goes back to the queue: forget what it reported."""
        self._running.pop(trial_id, None)
        self._stopped.discard(trial_id)

    def add_completed(self, trial_id: str, values_by_epoch: Dict[int, Optional[float]]) -> None:
        """A trial completed by an earlier run of this search (resume)."""
        self.discard(trial_id)
        for epoch in sorted(values_by_epoch):
            self._record(trial_id, epoch, values_by_epoch[epoch])
        self.complete(trial_id)


def _best(values, direction: str) -> float:
    return min(values) if direction == "min" else max(values)
