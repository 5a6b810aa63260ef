"""One evaluation protocol per table: which evaluation profile each cell's runs were scored under, and the table's
refusal (:class:`MixedProfiles`) when its rows disagree (``sspo_exp.evaluation.profile`` writes the profiles)."""

from __future__ import annotations

import pandas as pd

from sspo_exp import keys
from sspo_exp.report.table_model import BASE, LABELS, before_key, is_missing, metric_key, row_label


class MixedProfiles(ValueError):
    """The rows of one table were scored under different evaluation profiles (or some under an unknown one)."""


UNKNOWN = "unknown"  #: the profile of a result from before profiles were recorded


def profile_of(run: pd.Series, col: str, stage: str = keys.AFTER) -> tuple | None:
    """The evaluation profile a run's ``<stage>/<col>/…`` result was scored under, as a tuple over
    ``keys.PROFILE_FIELDS``; None when the run recorded none."""
    values = [run.get(keys.eval_key(col, keys.profile_stat(f), stage)) for f in keys.PROFILE_FIELDS]
    if all(is_missing(v) for v in values):
        return None
    # a column with gaps holds integers as floats (512.0): compare and print them as integers
    return tuple(None if is_missing(v) else int(v) if isinstance(v, float) and v.is_integer() else v for v in values)


def _cell_profiles(done: pd.DataFrame, cells: dict, block: str, rows: list[str], col: str) -> dict[str, list]:
    """``{row label: [profile of each run behind the (block, row, col) cell]}``: every finished run of the row
    reporting the column; a derived Base cell's training runs' ``eval_before``."""
    mine = done[done["block"] == block] if len(done) else done
    out: dict[str, list] = {}
    for row in rows:
        cell = cells.get((block, row, col))
        if cell is None or not cell.n:
            continue
        if "derived" in cell.marks:
            train = mine[(mine["method"] != BASE) & mine[before_key(col)].notna()]
            out[f"{row_label(row)} (eval_before)"] = [profile_of(r, col, keys.BEFORE) for _, r in train.iterrows()]
        else:
            have = mine[(mine["row"] == row) & mine[metric_key(col)].notna()]
            out[row_label(row)] = [profile_of(r, col) for _, r in have.iterrows()]
    return out


def _shown(value) -> str:
    return UNKNOWN if value is None else str(value)


def profile_mismatches(done: pd.DataFrame, cells: dict, blocks: list[str], rows: dict[str, list[str]],
                       columns: list[str]) -> list[str]:  # fmt: skip
    """One line per (model, column) whose rows do not share one known evaluation profile, naming the fields that
    differ, each value with the rows that have it, and the rows with no recorded profile."""
    out = []
    for b in blocks:
        for col in columns:
            by_row = _cell_profiles(done, cells, b, rows[b], col)
            distinct = {p for ps in by_row.values() for p in ps}
            if len(distinct) <= 1 and None not in distinct:
                continue
            parts = []
            for i, f in enumerate(keys.PROFILE_FIELDS):
                who: dict[str, list[str]] = {}
                for label, ps in by_row.items():
                    for v in dict.fromkeys(_shown(p[i]) for p in ps if p is not None):
                        who.setdefault(v, []).append(label)
                if len(who) > 1:
                    parts.append(f"{f}: " + "; ".join(f"{v} ({', '.join(labels)})" for v, labels in who.items()))
            unknown = [label for label, ps in by_row.items() if None in ps]
            if unknown:
                parts.append(f"no profile recorded ({', '.join(unknown)})")
            out.append(f"{b} / {LABELS.get(col, col)}: " + " | ".join(parts))
    return out


def mixed_profiles_message(table_name: str, mismatches: list[str]) -> str:
    """Why a table is refused (the report CLI prints it and exits 2)."""
    return (f"{table_name} would put rows scored under different evaluation profiles side by side:\n"
            + "\n".join(f"  {m}" for m in mismatches)
            + "\nScore every row under one profile (docs/evaluation.md, 'One evaluation profile per table': e.g. "
            "`sspo-exp eval --sweep <sweep file>` or `eval.model=runs/<id>` per run, then `sspo-exp report --reeval "
            "<profile_id>`), or pass "
            "--allow-mixed-profiles to build the table anyway (the differences are then listed under it).")


def profile_notes(done: pd.DataFrame, columns: list[str], derived: bool) -> list[str]:
    """One line per evaluation profile the table's finished runs were scored under (the caption's protocol); the
    training runs' ``eval_before`` profiles too when a Base cell is ``derived`` from them."""
    seen: dict[str, tuple] = {}
    for col in columns:
        for stage in (keys.AFTER, keys.BEFORE) if derived else (keys.AFTER,):
            key = keys.eval_key(col, keys.profile_stat("id"), stage)
            if key not in done:
                continue
            for _, r in done[done[key].notna()].iterrows():
                seen.setdefault(str(r[key]), profile_of(r, col, stage))
    return [f"evaluation profile {pid}: " + ", ".join(f"{f}={_shown(v)}" for f, v in zip(keys.PROFILE_FIELDS, p))
            for pid, p in sorted(seen.items())]
