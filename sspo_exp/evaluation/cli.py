"""``sspo-exp eval [overrides]``: compose ``conf/eval.yaml`` with Hydra and call ``run_eval(cfg)``.

    sspo-exp eval eval.model=runs/sspo-atanlog-s0-1a2b3c4d                  # a trained run (dir or id)
    sspo-exp eval eval.model=Qwen/Qwen2.5-7B-Instruct eval.backend=vllm     # a base-model row of Table 1
    sspo-exp eval eval.model=DIR eval.benchmarks=[math500] eval.data.math500=/data/math500.jsonl
"""

from __future__ import annotations

import sys

from sspo_exp import CONF_DIR, cli_help


def main(argv: list[str] | None = None) -> int:
    if cli_help.wants_help(sys.argv[1:] if argv is None else argv):  # groups and examples, not Hydra's config dump
        return cli_help.show("eval")
    import hydra
    from omegaconf import DictConfig

    from sspo_exp.evaluation.run import run_eval

    @hydra.main(config_path=str(CONF_DIR), config_name="eval", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        run_eval(cfg)

    saved = sys.argv
    sys.argv = ["sspo-exp eval", *(sys.argv[1:] if argv is None else argv)]
    try:
        _main()
    except SystemExit as e:  # Hydra prints the error and exits 1; hand the code back to the dispatcher
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
