"""``sspo-exp report``: the paper's tables and curves from stored W&B runs (offline directories or a project).

    sspo-exp report --offline runs/ --table mini --curves
    sspo-exp report --project my-entity/sspo --filters '{"config.model.name": "Qwen3-8B"}' --table 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sspo_exp import PAPER_DIR
from sspo_exp.report import FORMATS

# The report's own modules load pandas, matplotlib and W&B (~2 s): main() imports them (report/command.py) after the arguments
# are parsed, so `--help` and a mistyped option answer at once (tests/test_cli_help.py). Defaults that live in them
# (--smoothing, --running-after) are filled in there.


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sspo-exp report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--offline", nargs="+", metavar="DIR", help="W&B offline run directories (searched "
                     "recursively for offline-run-*/run-*.wandb; a resumed run's directories are merged)")
    src.add_argument("--project", metavar="ENTITY/PROJECT", help="read runs through the W&B public API")
    p.add_argument("--filters", type=_json_object, default=None,
                   help='W&B run filters as a JSON object (with --project), e.g. \'{"state": "finished"}\'')
    p.add_argument("--table", default="1", help="1, 2 (paper layouts) or mini (CPU grid)")
    p.add_argument("--columns", default=None, help="comma-separated benchmarks overriding the table's columns "
                   "(the paper's: gsm8k, math500, aime24, aime25, ..., or any benchmark with eval/<benchmark>/pass@1 "
                   "in the runs)")
    p.add_argument("--out", type=Path, default=Path("reports/out"), help="output directory")
    p.add_argument("--format", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    p.add_argument("--curves", action="store_true", help="also draw reward / entropy / weight-variance curves")
    p.add_argument("--smoothing", type=float, default=None, help="EMA alpha of the thick curves (default: the "
                   "paper's, 0.02)")
    p.add_argument("--select-metric", default=None, help="summary key whose mean over seeds picks the best "
                   "configuration per method (default: the held-out accuracy training logs)")
    p.add_argument("--seeds", type=int, default=None, help="expected seeds per cell (default: the most seen)")
    p.add_argument("--paper-dir", type=Path, default=PAPER_DIR, help="where table1.csv / table2.csv live")
    p.add_argument("--reeval", metavar="PROFILE_ID", default=None,
                   help="take the trained rows from their re-scoring `sspo-exp eval eval.model=runs/<id>` under this "
                        "profile id (summary keys reeval/<PROFILE_ID>/eval/...; e.g. vllm-bfloat16-512tok), so they "
                        "share the Base row's profile")
    p.add_argument("--allow-mixed-profiles", action="store_true",
                   help="build a table whose rows were scored under different evaluation profiles (or none "
                        "recorded: results from before profiles existed); refused by default. The differences are "
                        "listed under it")
    p.add_argument("--running-after", type=float, default=None, metavar="SECONDS",
                   help="an offline run with no exit record written to within this many seconds is 'running', "
                        "else 'killed' (default: 600)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes reading offline files and drawing figures in parallel (default: one per CPU, "
                        "at most 8; 1: none)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from sspo_exp.report.command import run  # pandas, matplotlib, W&B (~2 s): only once the arguments parsed

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
