"""``sspo-exp prefetch``: fetch every model, tokenizer and dataset a run or a sweep reads into the HF cache.

Compute nodes are often offline (``HF_HUB_OFFLINE=1``, ``slurm/env.sh``); run this on a login node first, with the
same ``HF_HOME`` the jobs will see::

    sspo-exp prefetch sweeps/table1.yaml                  # every point of a sweep (a path or a shipped name)
    sspo-exp prefetch experiment=table2_math model=qwen3-14b   # one training config (train's overrides)
    sspo-exp prefetch sweeps/table2_math.yaml --dry-run   # list what is needed and whether it is cached

Every point is composed and checked as ``sspo-exp train`` checks it (a bad point: one line, exit 2, nothing
fetched). What a point reads is the loaders' own answer (``sspo_exp.train.hub_cache.hub_needs``), and it is
fetched by the libraries that will read it: a model by ``huggingface_hub.snapshot_download`` (the repo's config,
tokenizer and weights, default branch, one weight format), a dataset split by ``datasets.load_dataset`` (which
downloads it and prepares the Arrow copy an offline ``load_dataset`` reads). At the end every need is checked as
a compute node will check it (``hub_cache.missing``), so "all cached" here means an offline job starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sspo_exp import CONF_DIR
from sspo_exp.data import HubSplit
from sspo_exp.data.loaders import hub_split_cached
from sspo_exp.errors import ConfigError
from sspo_exp.models import hub_model_missing
from sspo_exp.sweeps.grid import SweepError, load_sweep, sweep_jobs
from sspo_exp.train.config import make_plan
from sspo_exp.train.hub_cache import HubNeeds, hub_needs, missing, offline

#: Weight formats a model repo may ship besides safetensors (transformers and vLLM load safetensors when present).
OTHER_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt", "*.gguf", "*.onnx", "original/*")


def point_overrides(args: list[str], seeds: list[int] | None = None) -> list[list[str]]:
    """The override list of every point: a sweep file's points (then ``args``' overrides), or ``args`` itself."""
    if args and "=" not in args[0] and not args[0].startswith(("+", "~")):
        sweep = load_sweep(args[0])
        if seeds is not None:
            sweep["seeds"] = list(seeds)
        return sweep_jobs(sweep, args[1:])
    return [list(args)]


def needs_of(points: list[list[str]]) -> HubNeeds:
    """The union of what every point reads from the Hub, each point composed and checked first (world size 1: the
    batch arithmetic of the job's own world size is the sweep's check)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if len(points) > 1:
        print(f"{len(points)} points: composing and checking each (a few seconds)", flush=True)
    models: dict[str, str] = {}
    datasets: dict[HubSplit, str] = {}
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        for overrides in points:
            try:
                plan = make_plan(compose("train", overrides=overrides), world_size=1)
            except (HydraException, OmegaConfBaseException, ConfigError) as e:
                raise ConfigError(f"point {' '.join(overrides) or '(defaults)'}: {e}") from e
            needs = hub_needs(plan.cfg)
            for field, repo in needs.models:
                models.setdefault(repo, field)
            for field, split in needs.datasets:
                datasets.setdefault(split, field)
    return HubNeeds(tuple((f, r) for r, f in models.items()), tuple((f, s) for s, f in datasets.items()))


def fetch_model(repo: str) -> Path:
    """The model's snapshot in the hub cache: config, tokenizer, code and weights (safetensors only when it has them)."""
    from huggingface_hub import HfApi, snapshot_download

    files = [s.rfilename for s in HfApi().model_info(repo).siblings or []]
    ignore = list(OTHER_WEIGHTS) if any(f.endswith(".safetensors") for f in files) else None
    return Path(snapshot_download(repo, ignore_patterns=ignore))


def fetch_split(split: HubSplit) -> tuple[int, Path | None]:
    """Rows of the split and its prepared copy (``datasets.load_dataset``, as training loads it)."""
    ds = split.load()
    return len(ds), hub_split_cached(split)


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())  # symlinks into blobs/: followed
    return f"{total / 1e9:.2f} GB" if total >= 1e8 else f"{total / 1e6:.1f} MB"


def show(needs: HubNeeds) -> None:
    """Each need and whether it is cached (``--dry-run``)."""
    for field, repo in needs.models:
        lacking = hub_model_missing(repo)
        print(f"model    {repo:<40} {'cached' if not lacking else 'missing: ' + ', '.join(lacking[:3])}  ({field})")
    for field, split in needs.datasets:
        where = hub_split_cached(split)
        print(f"dataset  {str(split):<40} {'cached ' + str(where) if where else 'missing'}  ({field})")


def fetch(needs: HubNeeds) -> list[str]:
    """Fetch every need, printing what and where; return what is still missing afterwards (should be [])."""
    for _field, repo in needs.models:
        path = fetch_model(repo)
        print(f"model    {repo:<40} -> {path} ({_size(path)})", flush=True)
    for _field, split in needs.datasets:
        rows, where = fetch_split(split)
        print(f"dataset  {str(split):<40} -> {where} ({rows} rows)", flush=True)
    return missing(needs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sspo-exp prefetch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("args", nargs="*", help="a sweep file (then overrides for every point), or train's overrides")
    parser.add_argument("--seeds", type=int, nargs="+", help="a sweep's seeds (what is read does not depend on them)")
    parser.add_argument("--dry-run", action="store_true", help="list what the points read and whether it is cached")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        needs = needs_of(point_overrides(args.args, args.seeds))
        if args.dry_run:
            show(needs)
            return 0
        if offline():
            raise ConfigError("HF_HUB_OFFLINE=1 is set: prefetch downloads; run it where the Hub is reachable with "
                              "HF_HUB_OFFLINE=0 (same HF_HOME as the jobs)")
        print(f"{len(needs.models)} model(s), {len(needs.datasets)} dataset split(s) into "
              f"HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}", flush=True)
        lacking = fetch(needs)
    except (ConfigError, SweepError) as e:
        print(f"sspo-exp prefetch: error: {e}", file=sys.stderr)
        return 2
    if lacking:
        print(f"sspo-exp prefetch: still missing after fetching: {'; '.join(lacking)}", file=sys.stderr)
        return 1
    print("all cached: a job with HF_HUB_OFFLINE=1 and this HF_HOME finds every model and dataset it reads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
