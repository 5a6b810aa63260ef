"""The CPU study (reports/cpu_study/README.md): compact stored results -> tables, claims table, curves, provenance.

Two steps, so the published numbers are regenerated from small files, never from checkpoints or W&B directories:

    python -m sspo_exp.report.cpu_study collect runs/cpu_study reports/cpu_study/data   # W&B offline -> CSV frames
    python -m sspo_exp.report.cpu_study publish reports/cpu_study/data reports/cpu_study  # frames -> tables, figures

``collect`` (``report.study_data``) refuses to replace stored frames by a collection that lacks any stored run (a
partial ``runs/`` folder, e.g. on a fresh clone) unless ``--force``. ``publish`` needs only ``data/`` (a fresh clone
suffices) and writes:

- ``table_grid.{md,tex,csv}``: the Appendix A grid at μ = 4, the report's own table (best configuration per method
  on held-out accuracy, mean ± std over seeds), with GSPO from the staleness ablation;
- ``table_staleness.{md,tex,csv}``: every objective at its default configuration for μ = 1, 2, 4, 8
  (``report.staleness``);
- ``claims.{md,tex,csv}``: the paper's claims (a)-(d) tested as ``protocol.md`` pre-registers in the primary regime
  (``report.claims``, ``report.stats``);
- ``regimes.{md,csv}`` and ``collapse.csv``: claims (a)-(c) in every regime that has runs, under the same rule, and
  whether entropy collapses in each (``report.regimes``);
- ``per_run.csv``, ``provenance.json`` (commits, versions, run counts, wall time, the protocol record);
- ``headline.{png,pdf}``, ``grid/``, ``staleness/``: curves with seed bands (``report.study_figures``).

``publish`` refuses data not produced under the committed protocol (``report.protocol``) unless ``--exploratory``,
which labels every table "exploratory (pre-protocol)".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.report import render
from sspo_exp.report.claims import claims, claims_latex, claims_markdown, gate_claim, gate_scores  # noqa: F401
from sspo_exp.report.protocol import PreProtocol, banner, study_status
from sspo_exp.report.regimes import REGIMES, all_regimes, regime_metrics, regimes_markdown
from sspo_exp.report.staleness import staleness_latex, staleness_markdown, staleness_table
from sspo_exp.report.study_data import (  # noqa: F401  (re-exported: the study's names in one place)
    ACC, ACC_BEFORE, BENCHMARK, CLAIM_MU, ENTROPY, HISTORY_COLUMNS, METHODS, PROFILE_COLUMNS, REWARD, RUN_COLUMNS,
    VAR_STALE, APPLIED_VAR_STALE, PartialRuns, collect, read_data, run_metrics)
from sspo_exp.report.study_figures import draw
from sspo_exp.report.tables import TableSpec, build_table

GRID_SPEC = TableSpec(f"CPU study grid (μ = {CLAIM_MU}, 48 steps)", ("arithmetic",), gate_rows=True, delta_avg=True)


def publish(data_dir: Path, out_dir: Path, figures: bool = True, exploratory: bool = False,
            protocol: Path | None = None) -> list[Path]:  # fmt: skip
    """Every published file of the study, from the stored frames in ``data_dir``; returns the paths written.
    ``protocol`` (default: ``protocol.md`` beside ``data_dir``) decides confirmatory or refused, unless
    ``exploratory`` (``report.protocol``)."""
    runs, history = read_data(data_dir)
    status = study_status(runs, protocol or data_dir.parent / "protocol.md", exploratory)
    top = banner(status)
    m = run_metrics(runs, history)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str | pd.DataFrame, float_format: str | None = None) -> None:
        if isinstance(text, str):
            (out_dir / name).write_text(text)
        else:
            text.to_csv(out_dir / name, index=False, float_format=float_format)
        written.append(out_dir / name)

    primary = REGIMES[0]
    # the descriptive tables and figures: the primary regime's learning rate (a run that recorded none is kept)
    lr = pd.to_numeric(runs.get("trainer.learning_rate"), errors="coerce")
    desc = runs[lr.isna() | lr.sub(primary.learning_rate).abs().le(1e-12)].copy()
    desc.attrs = runs.attrs
    grid_runs = desc[desc["trainer.mu"] == CLAIM_MU].copy()
    grid_runs.attrs = runs.attrs
    # one evaluation profile per table, as in every report table; stored runs that predate recorded profiles (all
    # scored by the same in-training evaluator of one experiment config) are built anyway, the table notes say so
    recorded = any(c in grid_runs and grid_runs[c].notna().any() for c in PROFILE_COLUMNS)
    table = build_table(grid_runs, GRID_SPEC, paper_dir=None, allow_mixed_profiles=not recorded)
    write("table_grid.md", f"{top}\n\n{render.markdown(table)}")
    write("table_grid.tex", render.latex(table))
    write("table_grid.csv", render.csv_frame(table))
    st = staleness_table(m[m["run_id"].isin(desc["run_id"])])
    write("table_staleness.md", staleness_markdown(st, top))
    write("table_staleness.tex", staleness_latex(st))
    write("table_staleness.csv", st, "%.6g")
    cl = claims(regime_metrics(m, primary))
    write("claims.md", claims_markdown(cl, top))
    write("claims.tex", claims_latex(cl))
    write("claims.csv", cl, "%.6g")
    regime_table, falls = all_regimes(m)
    write("regimes.md", regimes_markdown(regime_table, falls, top))
    write("regimes.csv", regime_table, "%.6g")
    write("collapse.csv", falls, "%.6g")
    write("per_run.csv", m.sort_values("run_id"), "%.6g")
    write("provenance.json", json.dumps({**provenance(runs, data_dir), "protocol": status}, indent=1,
                                        sort_keys=True) + "\n")  # fmt: skip
    if figures:
        written += draw(desc, history, out_dir, GRID_SPEC, f" — {status['status']}")
    return written


WALL_COLUMNS = ["sweep", "filter", "seeds", "start", "end", "wall_s", "cpu_s"]


def provenance(runs: pd.DataFrame, data_dir: Path) -> dict:
    """Where the published numbers come from: code versions and commits of the runs, library versions, run counts,
    and the study's wall and CPU time per phase (``data/wall.tsv``, written by run.sh)."""
    env = json.loads((data_dir / "environment.json").read_text()) if (data_dir / "environment.json").exists() else {}
    wall = (pd.read_csv(data_dir / "wall.tsv", sep="\t", names=WALL_COLUMNS, dtype={"filter": str, "seeds": str})
            if (data_dir / "wall.tsv").exists() else pd.DataFrame(columns=WALL_COLUMNS))  # fmt: skip
    finished = int((runs["state"] == "finished").sum())
    phases = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
              for r in wall.to_dict("records")]  # fmt: skip
    cpu = float(wall["cpu_s"].sum()) if len(wall) else math.nan
    return {
        "runs": {state: int(n) for state, n in runs["state"].value_counts().sort_index().items()},
        "code": sorted({f"{v} @ {str(c)[:12]}" for v, c in zip(runs["code.version"], runs["code.commit"])}),
        "environment": env,
        "phases": phases,
        "wall_s_total": float(wall["end"].max() - wall["start"].min()) if len(wall) else None,
        "cpu_s_total": None if math.isnan(cpu) else cpu,
        "cpu_s_per_finished_run": None if math.isnan(cpu) or not finished else round(cpu / finished, 1),
        "run_wall_s": run_wall(runs),
    }


def run_wall(runs: pd.DataFrame) -> dict | None:
    """Wall seconds of each finished run as W&B recorded it (``_runtime``): mean, min, max and their total."""
    t = pd.to_numeric(runs.loc[runs["state"] == "finished", "_runtime"], errors="coerce").dropna() \
        if "_runtime" in runs else pd.Series(dtype=float)
    if t.empty:
        return None
    return {"mean": round(float(t.mean()), 1), "min": float(t.min()), "max": float(t.max()), "total": float(t.sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sspo_exp.report.cpu_study", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="W&B offline runs -> compact CSV frames")
    c.add_argument("runs", nargs="+", type=Path, help="directories holding the study's runs")
    c.add_argument("data", type=Path, help="where runs.csv and history.csv go")
    c.add_argument("--force", action="store_true", help="replace stored frames even if the runs found lack some")
    q = sub.add_parser("publish", help="compact frames -> tables, claims, curves (needs only the data folder)")
    q.add_argument("data", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("--no-figures", action="store_true")
    q.add_argument("--exploratory", action="store_true",
                   help="publish runs not produced under protocol.md, every table labelled exploratory (pre-protocol)")
    q.add_argument("--protocol", type=Path, default=None, help="the protocol file (default: DATA/../protocol.md)")
    args = p.parse_args(argv)
    try:
        writable_dir(args.data if args.cmd == "collect" else args.out, "data" if args.cmd == "collect" else "out",
                     create=False)  # before any run is read
        if args.cmd == "collect":
            *roots, data = [*args.runs, args.data]
            runs, _ = collect(roots, data, force=args.force)
            print(f"{len(runs)} runs ({int((runs['state'] == 'finished').sum())} finished) -> {data}")
            return 0
        if not (args.data / "runs.csv").is_file() or not (args.data / "history.csv").is_file():
            raise FileNotFoundError(f"{args.data} holds no runs.csv and history.csv (write them with `collect`)")
        paths = publish(args.data, args.out, figures=not args.no_figures, exploratory=args.exploratory,
                        protocol=args.protocol)  # fmt: skip
    except (PreProtocol, PartialRuns, FileNotFoundError, ConfigError) as e:
        print(f"cpu_study {args.cmd}: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
