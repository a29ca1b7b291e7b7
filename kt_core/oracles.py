"""keras-tuner oracles, with what they must remember to resume an interrupted search.

keras-tuner 1.4.8's `GridSearchOracle` keeps its walk through the grid (the order
of the trials it created and the trials whose successors it has yet to create)
in memory only: a grid search reloaded from its directory after an interruption
fails on the next trial with `KeyError: '<trial id>'` inside `LinkedList.next`.
`ResumableGridSearchOracle` saves that walk with the oracle's state and restores
it; state saved without it (older searches) is rebuilt from the trial order.
"""

from __future__ import annotations

import functools


def _walk(linked_list):
    """The data of a keras-tuner gridsearch.LinkedList, head to tail."""
    index = linked_list._next_index[None]
    while index is not None:
        yield linked_list._memory[index]
        index = linked_list._next_index[index]


@functools.lru_cache(maxsize=None)
def resumable_grid_search_oracle():
    from keras_tuner import oracles
    from keras_tuner.src.tuners.gridsearch import LinkedList

    class ResumableGridSearchOracle(oracles.GridSearchOracle):
        def get_state(self):
            state = super().get_state()
            state["grid_order"] = list(_walk(self._ordered_ids))
            state["grid_populate_next"] = list(self._populate_next)
            return state

        def set_state(self, state):
            super().set_state(state)
            self._ordered_ids = LinkedList()
            for trial_id in state.get("grid_order", self.start_order):
                self._ordered_ids.insert(trial_id)
            self._populate_next = list(state.get("grid_populate_next", self.end_order))

    return ResumableGridSearchOracle


class IncrementalFailureCheck:
    """keras-tuner's `Oracle._check_consecutive_failures`, without its rescan.

    keras-tuner calls it at every trial end and it walks all of `end_order`: a
    search of n trials spends O(n^2) there, on the coordinator's request path. This
    walks only the trials ended since the last call, keeping the run of failures, and
    raises the same error at the same trial (a run that reached the limit raises on
    every later call too, as the rescan does). Installed on an oracle instance:
    `oracle._check_consecutive_failures = IncrementalFailureCheck(oracle)`."""

    def __init__(self, oracle):
        self.oracle = oracle
        self._checked = 0
        self._run = 0
        self._hit = None

    def __call__(self) -> None:
        from keras_tuner.src.engine.trial import TrialStatus

        oracle = self.oracle
        for trial_id in oracle.end_order[self._checked:]:
            trial = oracle.trials[trial_id]
            self._run = self._run + 1 if trial.status == TrialStatus.FAILED else 0
            if self._hit is None and self._run == oracle.max_consecutive_failed_trials:
                self._hit = trial
        self._checked = len(oracle.end_order)
        if self._hit is not None:
            raise RuntimeError("Number of consecutive failures exceeded the limit "
                               f"of {oracle.max_consecutive_failed_trials}.\n"
                               + (self._hit.message or ""))


def copy_hyperparameters(hyperparameters):
    """What `HyperParameters.copy()` returns, each hyperparameter rebuilt by its own
    class's `from_config`. keras-tuner's copy goes through Keras' generic deserializer,
    which inspects signatures for every hyperparameter of every trial an oracle
    creates: a quarter of the coordinator's work per hand-out in a profile. Installed
    on the oracle's space: `oracle.hyperparameters.copy = CopyOf(oracle.hyperparameters)`."""
    from keras_tuner import HyperParameters

    copy = HyperParameters()
    for hp in hyperparameters.space:
        hp = type(hp).from_config(hp.get_config())
        copy._hps[hp.name].append(hp)
        copy._space.append(hp)
    copy.values = dict(hyperparameters.values)
    return copy


class CopyOf:
    """`copy` for one HyperParameters instance (see copy_hyperparameters)."""

    def __init__(self, hyperparameters):
        self.hyperparameters = hyperparameters

    def __call__(self):
        return copy_hyperparameters(self.hyperparameters)
