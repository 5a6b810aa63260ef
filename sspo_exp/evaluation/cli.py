"""``sspo-exp eval [overrides]``: compose ``conf/eval.yaml`` with Hydra and call ``run_eval(cfg)``.

    sspo-exp eval eval.model=runs/sspo-atanlog-s0-1a2b3c4d                  # a trained run (dir or id)
    sspo-exp eval eval.model=Qwen/Qwen2.5-7B-Instruct eval.backend=vllm     # a base-model row of Table 1
    sspo-exp eval eval.model=DIR eval.benchmarks=[math500] eval.data.math500=/data/math500.jsonl
    sspo-exp eval --sweep sweeps/table1.yaml eval.backend=vllm eval.dtype=bfloat16   # every finished run of a sweep
                                                                                      # (sspo_exp/sweeps/rescore.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

from sspo_exp import cli_help, hydra_cli
from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.evaluation.settings import check_eval
from sspo_exp.models import missing_local_dir, missing_local_dir_message
from sspo_exp.sweeps import rescore
from sspo_exp.train.hub_cache import eval_needs, eval_prefetch_command, offline, refuse_missing


def task(cfg) -> None:
    check_eval(cfg)  # before torch, transformers and the model load
    if cfg.eval.get("output_dir"):  # the results' directory, when set (unset: the run's reeval/<profile>/)
        writable_dir(str(cfg.eval.output_dir), "eval.output_dir", create=False)
    check_offline(cfg)
    from sspo_exp.evaluation.run import run_eval  # torch, transformers: after the config is known to be good

    run_eval(cfg)


def check_offline(cfg) -> None:
    """On a node without network (``HF_HUB_OFFLINE=1``): the Hub model and benchmarks this evaluation reads are in the
    HF cache, else one line naming the first missing and the ``sspo-exp prefetch`` line that fetches them (training's
    own check, ``sspo_exp.train.hub_cache``)."""
    if not offline():
        return
    e, spec = cfg.eval, str(cfg.eval.model)
    run_id = (Path(str(cfg.output_root)).expanduser() / spec).is_dir()  # a run id under output_root, not a Hub id
    if not run_id and missing_local_dir(spec):  # a mistyped local path first: it is not a missing download
        raise ConfigError(missing_local_dir_message("eval.model", spec))
    needs = eval_needs(None if run_id else spec, list(e.benchmarks), dict(e.get("data") or {}))
    refuse_missing(needs, eval_prefetch_command(needs, e.get("model_name") or spec.rsplit("/", 1)[-1].lower()))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if rescore.wanted(args):  # --sweep FILE | --group G: every finished run of it, one job each, one profile
        return rescore.main(args, task)
    if cli_help.wants_help(sys.argv[1:] if argv is None else argv):  # groups and examples, not Hydra's config dump
        return cli_help.show("eval")
    return hydra_cli.run("eval", "sspo-exp eval", task, argv)


if __name__ == "__main__":
    sys.exit(main())
