"""``sspo-exp report`` once its arguments are parsed: this module loads pandas, matplotlib and W&B (~2 s), so the
command's parser (``sspo_exp.report.cli``) imports it only after parsing: ``--help`` and a mistyped option answer at
once."""

from __future__ import annotations

import sys

from sspo_exp import keys
from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.report import FORMATS, render, sources
from sspo_exp.report.curves import ALPHA, plot_all
from sspo_exp.report.tables import DEFAULT_SELECT_METRIC, LABELS, SPECS, MixedProfiles, build_table
from sspo_exp.report.wandb_offline import RUNNING_IDLE_SECONDS

def _bad_columns(columns: tuple[str, ...], runs) -> str | None:
    """Error message for ``--columns`` naming a benchmark neither known nor reported by any run, else None."""
    benchmarks = tuple(b for b in LABELS if b != "delta_avg")
    seen = set(keys.benchmarks_in(runs.columns))
    allowed = list(benchmarks) + sorted(seen - set(benchmarks))
    bad = [c for c in columns if c not in allowed]
    if bad or not columns:
        return (f"--columns {','.join(bad) or '(empty)'} unknown; choose from {','.join(allowed)} "
                "(benchmarks with eval/<benchmark>/pass@1 in the runs' summaries)")
    return None


def _missing_reeval(profile_id: str, runs) -> str | None:
    """An error when no run holds re-scored results under ``profile_id`` (a typo would otherwise print a table of
    dashes over the last one), naming the profiles the runs do hold."""
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


def run(args) -> int:
    """``sspo-exp report`` with parsed arguments (``sspo_exp.report.cli``): read the runs, build, write, print."""
    args.select_metric = keys.current_name(args.select_metric or DEFAULT_SELECT_METRIC)  # an old spelling: the frames hold the new
    args.smoothing = ALPHA if args.smoothing is None else args.smoothing
    args.running_after = RUNNING_IDLE_SECONDS if args.running_after is None else args.running_after
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if err := _argument_error(args, formats, sorted(SPECS)):
        print(f"sspo-exp report: {err}", file=sys.stderr)
        return 2
    try:
        writable_dir(args.out, "--out", create=False)  # before the runs are read, not after the table is built
        runs, history = sources.load(offline=args.offline, project=args.project, filters=args.filters,
                             idle_seconds=args.running_after, workers=args.workers)
    except (FileNotFoundError, ValueError) as e:  # ValueError: ConfigError (--out) too
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
    try:
        writable_dir(args.out, "--out")  # what the check above could not see (a read-only mount, as root)
    except ConfigError as e:
        print(f"sspo-exp report: {e}", file=sys.stderr)
        return 2
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
