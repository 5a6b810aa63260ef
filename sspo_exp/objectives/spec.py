"""What an objective is, checked without torch: the registered objectives' names, hyper-parameters and their
allowed values.

:func:`objective_spec` is the one place that decides whether a set of hyper-parameters is valid (the training plan
calls it before torch is imported; :func:`sspo_exp.objectives.make_objective` builds from its result). What each
objective takes and allows is its own definition's (:mod:`.registry`, one file per objective in :mod:`.methods`);
nothing here names an objective.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import methods  # noqa: F401  (imports every objective's file: each registers itself)
from .registry import LOSS_AGGS, SPEC_PARAMS, ObjectiveSpec, objective_definition, objective_names

#: The objectives shipped with the package, in SPEC.md's order (the registry may hold more at run time).
OBJECTIVES = objective_names()


def objective_spec(name: str, *, gate: str | None = None, tau_pos: float | None = None, tau_neg: float | None = None,
                   eps_low: float | None = None, eps_high: float | None = None, loss_agg: str = LOSS_AGGS[0],
                   **extra: Any) -> ObjectiveSpec:  # fmt: skip
    """Check objective ``name``'s hyper-parameters (see ``make_objective``); raise ``ValueError`` naming the bad one.

    ``extra``: hyper-parameters of a registered objective outside the five named ones (``ObjectiveSpec.extra``).
    A hyper-parameter the objective does not take is refused, not ignored.
    """
    definition = objective_definition(name)
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg={loss_agg!r} is not known; valid values: {', '.join(LOSS_AGGS)}")
    given = {"eps_low": eps_low, "eps_high": eps_high, "gate": gate, "tau_pos": tau_pos, "tau_neg": tau_neg, **extra}
    for key, value in given.items():
        if value is not None and key not in definition.params:
            raise ValueError(f"objective {name!r} takes no {key} (got {key}={value!r}); {definition.takes()}")
    values = definition.check({key: given.get(key) for key in definition.params})
    fields = {key: values.pop(key) for key in SPEC_PARAMS if key in values}
    return ObjectiveSpec(name, loss_agg, **fields, extra=tuple(values.items()))


def spec_from_config(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> ObjectiveSpec:
    """The spec of the Hydra groups ``objective`` (conf/objective/) and ``gate`` (conf/gate/, read only by an objective
    whose definition says so: SSPO)."""
    name = objective.get("name")
    kwargs = objective_definition(name).from_config(objective, gate)
    return objective_spec(name, loss_agg=objective.get("loss_agg") or LOSS_AGGS[0], **kwargs)


def spec_as_written(objective: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> ObjectiveSpec:
    """The objective of the Hydra groups as written, unchecked and without defaults: what a run's identity labels
    (``sspo_exp.identity``), so a config the plan would refuse still has an id and a label."""
    name = objective.get("name")
    definition = objective_definition(name)
    given = definition.from_config(objective, gate)
    values = {key: given.get(key) for key in definition.params}
    fields = {key: values.pop(key) for key in SPEC_PARAMS if key in values}
    return ObjectiveSpec(name, objective.get("loss_agg") or LOSS_AGGS[0], **fields, extra=tuple(values.items()))
