"""The objective registry, as verl's ``register_policy_loss`` (``verl/trainer/ppo/core_algos.py``): one decorator per
objective, and no code outside the registry branches on an objective's name.

An objective is one file in :mod:`sspo_exp.objectives.methods` holding one class decorated with
``@register_objective("name")``; that package imports every file in its folder, so adding an objective is adding a
file. The class owns everything that differs between objectives:

- ``params``: the hyper-parameters it takes (any other one given is refused, naming it);
- ``check``: their allowed values and defaults, torch-free (a config is validated before torch loads);
- ``from_config``: where they come from in the Hydra config (default: the ``objective`` group);
- ``label``, ``hyper_label``, ``tags``: how run ids, W&B groups and tables name it (``sspo_exp.identity``);
- ``build(spec, kit)``: the torch objective (:class:`sspo_exp.objectives.core.Objective`) from the building blocks of
  :mod:`sspo_exp.objectives.kit`, passed in as an argument so the objective's file imports without torch.

This module imports nothing of torch or of the objectives themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

#: ``loss_agg``: the paper's ``1/G Σ_i`` of per-response means (default), or DAPO-style token weighting.
LOSS_AGGS = ("seq-mean-token-mean", "token-mean")
#: The hyper-parameters :class:`ObjectiveSpec` has a field for, in the order a refusal names them (an objective may
#: declare others in ``params``: they travel in ``ObjectiveSpec.extra``).
SPEC_PARAMS = ("eps_low", "eps_high", "gate", "tau_pos", "tau_neg")
#: Hyper-parameters read from the Hydra ``objective`` group for every objective (a value there that the objective
#: does not take is refused, not ignored).
OBJECTIVE_GROUP_PARAMS = ("eps_low", "eps_high", "tau_pos", "tau_neg")


@dataclass(frozen=True)
class ObjectiveSpec:
    """An objective: its name and exactly the hyper-parameters it takes (the others are None). Checked when made by
    ``objective_spec``/``spec_from_config``; as written in the config when made by ``spec_as_written`` (labels only).

    ``label`` (``grpo``, ``sspo-atanlog``), ``hyper_label`` (``ε0.2``, ``τ0.3/0.2``) and ``tags`` come from the
    objective's registered definition.
    """

    name: str
    loss_agg: str = LOSS_AGGS[0]
    gate: str | None = None
    tau_pos: float | None = None
    tau_neg: float | None = None
    eps_low: float | None = None
    eps_high: float | None = None
    extra: tuple[tuple[str, Any], ...] = ()  #: hyper-parameters outside :data:`SPEC_PARAMS`, as (name, value) pairs

    def param(self, key: str) -> Any:
        """The value of hyper-parameter ``key`` (a field or one of ``extra``; None when not taken)."""
        extra = dict(self.extra)
        return extra[key] if key in extra else getattr(self, key, None)

    def as_dict(self) -> dict[str, Any]:
        """``name``, ``loss_agg`` and every hyper-parameter that has a value (``extra`` flattened in)."""
        names = ("name", "loss_agg", "gate", "tau_pos", "tau_neg", "eps_low", "eps_high")
        fields = {k: getattr(self, k) for k in names}
        return {**{k: v for k, v in fields.items() if v is not None}, **dict(self.extra)}

    @property
    def definition(self) -> ObjectiveDef:
        return objective_definition(self.name)

    @property
    def label(self) -> str:
        """``grpo``, ``sspo-atanlog``: the objective as runs (W&B job type) and tables name it."""
        return self.definition.label(self)

    @property
    def hyper_label(self) -> str:
        """The swept hyper-parameters as a reader sees them: ``τ0.3/0.2`` (τ_neg/τ_pos), ``ε0.2``; may be empty."""
        return self.definition.hyper_label(self)

    @property
    def tags(self) -> list[str]:
        """The objective's W&B tags: its name first (``sspo``, ``gate:atanlog``)."""
        return self.definition.tags(self)


class ObjectiveDef:
    """A registered objective (subclass it in a file of :mod:`sspo_exp.objectives.methods`; see the module doc).

    Override ``build`` always, the rest as needed. ``equation`` is the objective's equation number in SPEC.md: it
    orders listings (``valid values: grpo, gspo, gmpo, sapo, sspo``); an objective without one comes last.
    """

    name: str = ""  #: set by :func:`register_objective`
    params: tuple[str, ...] = ()
    equation: float = math.inf
    #: whether the Hydra ``gate`` group configures this objective; when not, the group is ignored and left out of the
    #: run id (``sspo_exp.identity.meaningful_config``)
    reads_gate_group: bool = False

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (one entry per ``params``, None = not given) with defaults filled in; ``ValueError`` naming the
        field and its allowed values when one is wrong."""
        return values

    def takes(self) -> str:
        """What a refusal says this objective takes."""
        return f"{self.name} takes {', '.join(self.params)}" if self.params else f"{self.name} takes no hyper-parameter"

    def from_config(self, objective: Mapping[str, Any], gate: Mapping[str, Any] | None) -> dict[str, Any]:
        """The hyper-parameters given in the Hydra groups ``objective`` and ``gate`` (before ``check``)."""
        return {k: objective.get(k) for k in dict.fromkeys((*OBJECTIVE_GROUP_PARAMS, *self.params)) if k != "gate"}

    def label(self, spec: ObjectiveSpec) -> str:
        return self.name

    def hyper_label(self, spec: ObjectiveSpec) -> str:
        return ""

    def tags(self, spec: ObjectiveSpec) -> list[str]:
        return [self.name]

    def build(self, spec: ObjectiveSpec, kit: Any) -> Any:
        """The objective callable; ``kit`` is :mod:`sspo_exp.objectives.kit` (torch)."""
        raise NotImplementedError(f"objective {self.name!r} has no build")


_REGISTRY: dict[str, ObjectiveDef] = {}
D = TypeVar("D", bound=type)


def register_objective(name: str) -> Callable[[D], D]:
    """Class decorator: register an :class:`ObjectiveDef` subclass under ``name`` (an instance is stored)."""

    def decorator(cls: D) -> D:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered ({type(_REGISTRY[name]).__qualname__})")
        definition = cls()
        definition.name = name
        _REGISTRY[name] = definition
        return cls

    return decorator


def unregister_objective(name: str) -> None:
    """Remove ``name`` from the registry (tests register throwaway objectives)."""
    _REGISTRY.pop(name)


def objective_names() -> tuple[str, ...]:
    """The registered objectives, in SPEC.md's order (by equation number)."""
    return tuple(sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].equation, n)))


def objective_definition(name: Any) -> ObjectiveDef:
    """The definition registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"objective={name!r} is not known; valid values: {', '.join(objective_names())}")
    return _REGISTRY[name]


def reads_gate_group(name: Any) -> bool:
    """Whether objective ``name`` reads the Hydra ``gate`` group (False for an unknown name)."""
    return isinstance(name, str) and name in _REGISTRY and _REGISTRY[name].reads_gate_group


# --- checks shared by the objectives' ``check`` methods --------------------------------------------------------


def as_float(x: Any) -> Any:
    """An integer (not a bool) as the float it stands for, anything else unchanged: labels read ``1`` as ``1.0``
    (as ``sspo_exp.identity`` reads float keys)."""
    return float(x) if is_number(x) else x


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_taus(who: str, tau_pos: Any, tau_neg: Any, grid: str) -> None:
    """Both temperatures given and > 0; the message names the bad one and the paper's grid."""
    for label, tau in (("tau_pos", tau_pos), ("tau_neg", tau_neg)):
        if tau is None or not is_number(tau) or not tau > 0:
            raise ValueError(f"{who}: {label} must be a number > 0 (the paper's grid: {grid}); got {tau!r}")
