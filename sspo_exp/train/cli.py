"""``sspo-exp train [overrides]``: compose ``conf/train.yaml`` with Hydra and call ``train(cfg)``
(``sspo_exp.hydra_cli``: overrides, multirun, launchers; exit status 2 for a bad config, before any model loads)."""

from __future__ import annotations

import sys


def task(cfg) -> float | None:
    from sspo_exp.train.run import train

    summary = train(cfg)
    return summary.get("heldout_accuracy_after")  # Hydra's sweepers (Optuna) read the return value


def main(argv: list[str] | None = None) -> int:
    from sspo_exp import cli_help, hydra_cli

    if cli_help.wants_help(sys.argv[1:] if argv is None else argv):  # groups and examples, not Hydra's config dump
        return cli_help.show("train")
    return hydra_cli.run("train", "sspo-exp train", task, argv)


if __name__ == "__main__":
    sys.exit(main())
