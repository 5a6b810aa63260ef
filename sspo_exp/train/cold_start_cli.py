"""``sspo-exp cold-start [overrides]``: compute (or find) the cold start of a training config, and print its path.

Takes the same Hydra overrides as ``sspo-exp train`` and runs only the cold-start stage
(``sspo_exp.stages.policy.cold_started_path``), so it can run once in a job the RL jobs depend on::

    sspo-exp cold-start experiment=table1 seed=0      # -> $SSPO_EXP_CACHE/coldstart-qwen2.5-7b-instruct-s0-<hash>

Under ``accelerate launch`` (several processes, e.g. ``--config_file conf/accelerate/deepspeed_zero3.yaml -m
sspo_exp.cli cold-start experiment=table1``) every process takes part in the SFT and process 0 publishes; an RL
launch of several processes only reads the cached stage. A config without a cold start prints ``model.path``. A bad
config (the whole training config is checked, as ``sspo-exp train`` does) exits with status 2 and a one-line message.
"""

from __future__ import annotations

import sys

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from sspo_exp import CONF_DIR
from sspo_exp.data import DataError
from sspo_exp.errors import ConfigError
from sspo_exp.stages.cache import check_cache
from sspo_exp.train.config import check_local_paths, make_plan


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=argv)
        # the whole training config (before torch loads), so no cold start for a run that cannot start; at world size
        # 1, the weakest batch condition: the RL launch may use another number of processes than this one
        plan = make_plan(cfg, world_size=1)
        # the files the SFT reads (model.path only when there is an SFT: without one this prints model.path)
        check_local_paths(cfg, model=bool((cfg.model.get("cold_start") or {}).get("enabled")))
        if plan.cold_start is not None:
            check_cache(plan.cold_start.stage_id)
        from sspo_exp.stages.policy import spec_path  # torch, transformers, TRL: after the config is known to be good

        path = spec_path(plan.cold_start, cfg.model, cfg.model.get("cold_start"), cfg.dataset, distributed=True)
    except (HydraException, ConfigError, DataError) as e:  # the user's input; anything else keeps its traceback
        print(f"sspo-exp cold-start: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
