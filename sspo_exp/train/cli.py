"""``sspo-exp train [overrides]``: compose ``conf/train.yaml`` with Hydra and call ``train(cfg)``.

``hydra.main`` runs with ``sys.argv`` set to our arguments, so everything Hydra's own command line offers works:
``-m``/``--multirun`` sweeps, launcher plugins (``hydra/launcher=submitit_slurm``), ``--cfg job``, tab completion.
"""

from __future__ import annotations

import sys

from sspo_exp import CONF_DIR, cli_help


def main(argv: list[str] | None = None) -> int:
    if cli_help.wants_help(sys.argv[1:] if argv is None else argv):  # groups and examples, not Hydra's config dump
        return cli_help.show("train")
    import hydra
    from omegaconf import DictConfig

    from sspo_exp.train.run import train

    @hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
    def _main(cfg: DictConfig) -> float | None:
        summary = train(cfg)
        return summary.get("heldout_accuracy_after")  # Hydra's sweepers (Optuna) read the return value

    saved = sys.argv
    sys.argv = ["sspo-exp train", *(sys.argv[1:] if argv is None else argv)]
    try:
        _main()
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
