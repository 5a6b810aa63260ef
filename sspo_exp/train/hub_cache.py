"""What a training config (or an evaluation) reads from the Hugging Face Hub, and whether this machine's HF cache holds it.

A compute node often has no network (``HF_HUB_OFFLINE=1``, as ``slurm/env.sh`` sets): there a run whose model or
dataset is not in the cache would fail after loading for a while, in a long traceback. :func:`check_hub_cache` runs
with the other checks of local files (``check_local_paths``), before W&B opens or anything loads, and ends such a
run in one line naming what is missing and the command that fetches it on a login node (``sspo-exp prefetch``,
``sspo_exp.sweeps.prefetch``). What is read is the loaders' own answer (``sspo_exp.data.dataset_hub_splits``,
``benchmark_hub_splits``, ``sspo_exp.models.hub_id``); whether it is cached, theirs too (``hub_split_cached``,
``hub_model_missing``), reading only the cache (no ``datasets``/``transformers`` import: milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sspo_exp.data import HubSplit, benchmark_hub_splits, dataset_hub_splits
from sspo_exp.data.loaders import hub_split_cached
from sspo_exp.errors import ConfigError
from sspo_exp.models import hub_id, hub_model_missing

PREFETCH = "sspo-exp prefetch"


@dataclass(frozen=True)
class HubNeeds:
    """The Hub models and dataset splits one run reads, each with the config field that asks for it."""

    models: tuple[tuple[str, str], ...]  #: (field, repo id)
    datasets: tuple[tuple[str, HubSplit], ...]  #: (field, split)


def hub_needs(cfg: Any, model: bool = True) -> HubNeeds:
    """What ``cfg`` (a composed training config) reads from the Hub: ``model.path`` when it is a Hub id (also the
    SFT cold start's base), the training and held-out splits of ``dataset`` and the ``final_eval`` benchmarks
    without local data. ``model=False``: leave the model out."""
    repo = hub_id((cfg.get("model") or {}).get("path")) if model else None
    dataset = cfg.dataset
    datasets = [("dataset", s) for split in ("train", "heldout") for s in dataset_hub_splits(dataset, split)]
    final = cfg.get("final_eval") or {}
    # the arithmetic benchmark of an arithmetic run is its own dataset block (generated): nothing to fetch
    datasets += benchmark_needs("final_eval.benchmarks", final.get("benchmarks") or [], final.get("data") or {})
    return _needs("model.path", repo, datasets)


def benchmark_needs(field: str, benchmarks, local) -> list[tuple[str, HubSplit]]:
    """``(field name, split)`` of every Hub split the benchmarks read (those without local data in ``local``)."""
    return [(f"{field} {name}", s) for name in benchmarks for s in benchmark_hub_splits(name, local.get(name))]


def _needs(model_field: str, repo: str | None, datasets: list[tuple[str, HubSplit]]) -> HubNeeds:
    first: dict[HubSplit, str] = {}
    for field, split in datasets:
        first.setdefault(split, field)  # a split two fields read (GSM8K train: training rows and held-out carve) once
    return HubNeeds(((model_field, repo),) if repo else (), tuple((f, s) for s, f in first.items()))


def eval_needs(repo: str | None, benchmarks, local) -> HubNeeds:
    """What ``sspo-exp eval`` reads from the Hub: ``eval.model`` when it is a Hub model (``repo``) and the
    ``eval.benchmarks`` without local ``eval.data``."""
    return _needs("eval.model", hub_id(repo) if repo else None, benchmark_needs("eval.benchmarks", benchmarks, local))


def eval_prefetch_command(needs: HubNeeds, name: str) -> str:
    """The ``sspo-exp prefetch`` line (train's overrides) that fetches what an evaluation needs: the model as a
    ``model=local`` block called ``name`` and the benchmarks as ``final_eval.benchmarks``."""
    words = [PREFETCH]
    for _, repo in needs.models:
        words += ["model=local", f"model.path={repo}", f"model.name={name}"]
    benchmarks = list(dict.fromkeys(field.split()[-1] for field, _ in needs.datasets))
    return " ".join(words + ([f"final_eval.benchmarks=[{','.join(benchmarks)}]"] if benchmarks else []))


def offline() -> bool:
    """Downloads are forbidden here (``HF_HUB_OFFLINE=1``, or ``TRANSFORMERS_OFFLINE=1``)."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def prefetch_command() -> str:
    """``sspo-exp prefetch`` with this job's overrides (Hydra's task overrides, when Hydra runs the job)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None
    except Exception:  # noqa: BLE001 - no Hydra context: the generic form
        overrides = None
    return f"{PREFETCH} {' '.join(overrides)}" if overrides else f"{PREFETCH} <the same overrides | the sweep file>"


def missing(needs: HubNeeds) -> list[str]:
    """One description per need the local cache lacks ([] = a run can start offline)."""
    out = []
    for field, repo in needs.models:
        files = hub_model_missing(repo)
        if files:
            out.append(f"{field}={repo}: model not in the HF cache (missing {', '.join(files[:3])}"
                       f"{' ...' if len(files) > 3 else ''})")
    out += [f"{field}: dataset {split} not in the datasets cache" for field, split in needs.datasets
            if hub_split_cached(split) is None]
    return out


def check_hub_cache(cfg: Any, model: bool = True) -> None:
    """With ``HF_HUB_OFFLINE=1``, raise one :class:`ConfigError` naming the first model or dataset split the run
    reads that is not cached, and the prefetch command; online (downloads allowed), nothing to check."""
    if offline():
        refuse_missing(hub_needs(cfg, model), prefetch_command())


def refuse_missing(needs: HubNeeds, command: str) -> None:
    """One :class:`ConfigError` naming the first of ``needs`` the cache lacks and ``command`` (that fetches it)."""
    lacking = missing(needs)
    if lacking:
        more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
        raise ConfigError(f"{lacking[0]}{more}, and HF_HUB_OFFLINE=1 forbids downloading it: on a login node with "
                          f"network, run `{command}` (same HF_HOME), then launch again")
