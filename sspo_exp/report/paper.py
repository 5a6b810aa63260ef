"""The paper's numbers beside ours: matched by model, checked for being a possible Pass@1 (k/n), and each cell marked
with whether the paper's value lies inside our seeds' 95% t-interval (``sspo_exp.report.stats``)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sspo_exp.report import stats
from sspo_exp.report.table_model import BENCHMARK_SIZES, DECIMALS, LABELS, PAPER_SEEDS, SIZE_NOTES, Table, row_label


def representable(value: float, n: int, decimals: int = DECIMALS) -> bool:
    """Can the printed percentage ``value`` (rounded to ``decimals``) be ``100·k/n`` for an integer 0 ≤ k ≤ n?

    True when some k/n lies within half a unit of the last printed digit (boundaries included: either rounding
    of a tie counts).
    """
    half = 0.5 * 10.0**-decimals
    lo = math.ceil((value - half) * n / 100 - 1e-9)
    hi = math.floor((value + half) * n / 100 + 1e-9)
    return max(lo, 0) <= min(hi, n)


def check_paper_cells(table: Table, seeds: int = PAPER_SEEDS) -> None:
    """Note, beside the paper's numbers, which of its cells can be neither a Pass@1 on the benchmark's n problems
    (k/n) nor a mean over ``seeds`` seeds of such values (k/(seeds·n)), at their printed precision; and the
    paper's own caveat about the table (``TableSpec.paper_caveat``). Computed from the cells, nothing hard-coded."""
    if table.spec.paper_caveat:
        table.paper_notes.append(f"{table.spec.name}: {table.spec.paper_caveat}")
    for col in table.columns:
        n = BENCHMARK_SIZES.get(col)
        cells = {k: v for k, v in table.paper.items() if k[2] == col}
        if not n or not cells:
            continue
        bad = {k: v for k, v in cells.items() if not representable(v, n) and not representable(v, seeds * n)}
        table.paper_unrepresentable |= set(bad)
        if bad:
            shown = ", ".join(f"{b} / {row_label(r)} {v:.{DECIMALS}f}" for (b, r, _), v in sorted(bad.items()))
            table.paper_notes.append(
                f"§ {len(bad)} of the paper's {len(cells)} {LABELS.get(col, col)} cells can be neither a Pass@1 on "
                f"{n} problems (k/{n}) nor a mean over {seeds} seeds (k/{seeds * n}) at their printed precision: "
                f"{shown}.")
            if col in SIZE_NOTES:
                table.paper_notes.append(f"{LABELS.get(col, col)}: {SIZE_NOTES[col]}")


def _norm_model(name: str) -> str:
    return str(name).rsplit("/", 1)[-1].strip().lower()


def paper_values(path: Path, table: Table) -> dict[tuple[str, str, str], float]:
    """The paper's cells keyed like ours (models matched by name, case-insensitively, ignoring an org prefix)."""
    if not path.exists():
        table.notes.append(f"paper numbers not found at {path}")
        return {}
    paper = pd.read_csv(path)
    ours = {_norm_model(b): b for b in table.blocks}
    out = {}
    for _, p in paper.iterrows():
        block = ours.get(_norm_model(p["model"]))
        if block is None:
            continue
        gate = p.get("gate")
        row = f"{p['method']}/{gate}" if table.spec.gate_rows and isinstance(gate, str) and gate else p["method"]
        for col in table.columns:
            if col in p and pd.notna(p[col]):
                out[(block, row, col)] = float(p[col])
    unmatched = sorted(set(table.blocks) - {b for b, _, _ in out})
    if unmatched:
        table.notes.append(f"no paper numbers for model(s) {', '.join(unmatched)} in {path.name}")
    return out


def paper_intervals(table: Table) -> None:
    """For every cell with a paper value: ``"inside"`` / ``"outside"`` when the paper's value lies inside / outside
    our seeds' 95% t-interval of the cell's mean (df = n − 1, from the cell's sample std), ``"n < 2"`` when there
    is no interval (one seed); a Δ Avg cell is an average of differences with no interval of its own (``"—"``)."""
    for key, value in table.paper.items():
        cell = table.cells.get(key)
        if cell is None or not math.isfinite(cell.mean):
            continue
        table.paper_in_ci[key] = "—" if key[2] == "delta_avg" else stats.inside_t_interval(value, cell.mean,
                                                                                            cell.std, cell.n)
