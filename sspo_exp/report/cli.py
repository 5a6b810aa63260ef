"""``sspo-exp report``: the paper's tables and curves from stored W&B runs (offline directories or a project).

    sspo-exp report --offline runs/ --table mini --curves
    sspo-exp report --project my-entity/sspo --filters '{"config.model.name": "Qwen3-8B"}' --table 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sspo_exp import PAPER_DIR, keys

# The report's own modules load pandas, matplotlib and W&B (~2 s): they are imported in main(), after the arguments
# are parsed, so `--help` and a mistyped option answer at once (tests/test_cli_help.py). Defaults that live in them
# (--smoothing, --running-after) are filled in there.
FORMATS = ("md", "tex", "csv")


def _bad_columns(columns: tuple[str, ...], runs) -> str | None:
    """Error message for ``--columns`` naming a benchmark neither known nor reported by any run, else None."""
    from sspo_exp.report.tables import LABELS  # pandas: kept out of `--help` (see the top of this file)

    benchmarks = tuple(b for b in LABELS if b != "delta_avg")
    seen = set(keys.benchmarks_in(runs.columns))
    allowed = list(benchmarks) + sorted(seen - set(benchmarks))
    bad = [c for c in columns if c not in allowed]
    if bad or not columns:
        return (f"--columns {','.join(bad) or '(empty)'} unknown; choose from {','.join(allowed)} "
                "(benchmarks with eval/<benchmark>/pass@1 in the runs' summaries)")
    return None


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


def _missing_reeval(profile_id: str, runs) -> str | None:
    """An error when no run holds re-scored results under ``profile_id`` (a typo would otherwise print a table of
    dashes over the last one), naming the profiles the runs do hold."""
    from sspo_exp import keys

    if any(str(c).startswith(keys.reeval_prefix(profile_id)) for c in runs.columns):
        return None
    held = sorted({str(c).split("/")[1] for c in runs.columns if str(c).startswith("reeval/") and str(c).count("/") > 1})
    return (f"--reeval {profile_id}: no run has re-scored results under that profile; the runs hold: "
            f"{', '.join(held) or 'none (score them with `sspo-exp eval eval.model=runs/<id>`)'}")


def _no_runs(args, runs) -> str | None:
    """An error when nothing was read (empty tables would look like a result), naming where it looked."""
    if len(runs):
        return None
    where = " ".join(map(str, args.offline)) if args.offline else f"project {args.project}"
    return (f"no runs found in {where} (offline: W&B run directories offline-run-*/ holding a run-*.wandb file, "
            "searched recursively)")


def _argument_error(args, formats: list[str], tables: list[str]) -> str | None:
    """One line naming the option that is wrong and what is allowed, else None."""
    bad = sorted(set(formats) - set(FORMATS))
    if args.table not in tables:
        return f"--table {args.table} unknown; choose from {', '.join(tables)}"
    if bad:
        return f"--format {','.join(bad)} unknown; choose from {','.join(FORMATS)}"
    if not 0 < args.smoothing <= 1:
        return f"--smoothing must be in (0, 1], got {args.smoothing}"
    if args.workers is not None and args.workers < 1:
        return f"--workers must be >= 1, got {args.workers}"
    if args.filters is not None and not args.project:
        return "--filters needs --project"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # pandas, matplotlib, W&B: only now that the arguments parsed (see the top of this file)
    from sspo_exp.report import render
    from sspo_exp.report.curves import ALPHA, plot_all
    from sspo_exp.report.sources import load
    from sspo_exp.report.tables import DEFAULT_SELECT_METRIC, SPECS, MixedProfiles, build_table
    from sspo_exp.report.wandb_offline import RUNNING_IDLE_SECONDS

    args.select_metric = args.select_metric or DEFAULT_SELECT_METRIC
    args.smoothing = ALPHA if args.smoothing is None else args.smoothing
    args.running_after = RUNNING_IDLE_SECONDS if args.running_after is None else args.running_after
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if err := _argument_error(args, formats, sorted(SPECS)):
        print(f"sspo-exp report: {err}", file=sys.stderr)
        return 2
    try:
        runs, history = load(offline=args.offline, project=args.project, filters=args.filters,
                             idle_seconds=args.running_after, workers=args.workers)
    except (FileNotFoundError, ValueError) as e:
        print(f"sspo-exp report: {e}", file=sys.stderr)
        return 2
    if err := _no_runs(args, runs) or (args.reeval and _missing_reeval(args.reeval, runs)):
        print(f"sspo-exp report: {err}", file=sys.stderr)
        return 2
    spec = SPECS[args.table]
    columns = tuple(c.strip() for c in args.columns.split(",") if c.strip()) if args.columns is not None else None
    if columns is not None and (err := _bad_columns(columns, runs)):
        print(f"sspo-exp report: {err}", file=sys.stderr)
        return 2
    try:
        table = build_table(runs, spec, args.select_metric, args.seeds, columns, args.paper_dir, args.reeval,
                            args.allow_mixed_profiles)  # fmt: skip
    except MixedProfiles as e:
        print(f"sspo-exp report: {e}", file=sys.stderr)
        return 2
    md = render.markdown(table)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"table_{args.table}"
    written = []
    if "md" in formats:
        written.append(stem.with_suffix(".md"))
        written[-1].write_text(md)
    if "tex" in formats:
        written.append(stem.with_suffix(".tex"))
        written[-1].write_text(render.latex(table))
    if "csv" in formats:
        written.append(stem.with_suffix(".csv"))
        render.csv_frame(table).to_csv(written[-1], index=False)
    if args.curves:
        written += plot_all(runs, history, spec, args.out, args.select_metric, args.smoothing,
                            workers=args.workers)
    print(f"{len(runs)} runs read ({int((runs['state'] == 'finished').sum()) if len(runs) else 0} finished); "
          "wrote:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
