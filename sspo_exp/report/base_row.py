"""A Base cell derived from the training runs' evaluation of their initial policy (``eval_before``), when no
explicit base run exists (rules in ``sspo_exp.report.tables``' docstring)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sspo_exp.report.table_model import BASE, DECIMALS, LABELS, Cell, before_key


def derived_base(done: pd.DataFrame, columns: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(block, column): the eval_before values of the block's finished training runs}`` where any exist, as
    a frame with columns ``seed`` (the run id when the config has no seed) and ``value``."""
    out = {}
    train = done[done["method"] != BASE] if len(done) else done
    for col in columns:
        if before_key(col) not in train:
            continue
        seed = train["seed"] if "seed" in train else pd.Series(np.nan, index=train.index)
        vals = pd.DataFrame({"block": train["block"],
                             "seed": seed.astype(object).where(seed.notna(), "run " + train["run_id"].astype(str)),
                             "value": pd.to_numeric(train[before_key(col)], errors="coerce")}).dropna()
        for b, v in vals.groupby("block"):
            out[(b, col)] = v[["seed", "value"]].astype({"value": float})
    return out


def use_derived(cells: dict, vals: pd.DataFrame, block: str, col: str, notes: list[str]) -> bool:
    """Fill an empty Base cell from ``vals`` (seed, value; see the module docstring; True if filled); note a
    disagreeing explicit one."""
    per_seed = vals.groupby("seed", sort=False)["value"]
    seed_vals = per_seed.mean()  # one value per seed: its runs start from the same weights
    distinct = sorted(set(np.round(vals["value"].to_numpy(), 6)))
    shown = ", ".join(f"{v:.{DECIMALS}f}" for v in distinct)
    label = LABELS.get(col, col)
    cell = cells[(block, BASE, col)]
    if cell.n:  # an explicit base run wins
        if any(abs(v - cell.mean) > 1e-6 for v in distinct):
            notes.append(f"{block} / {label}: Base from the explicit base run(s) ({cell.mean:.{DECIMALS}f}); the "
                         f"training runs' eval_before gave {shown}.")
        return False
    n = len(seed_vals)
    cells[(block, BASE, col)] = Cell(mean=float(seed_vals.mean()), std=float(seed_vals.std(ddof=1)) if n > 1
                                     else math.nan, n=n, marks={"derived"}, config="eval_before",
                                     note=f"eval_before of {len(vals)} training runs, {n} seeds")
    if (per_seed.max() - per_seed.min() > 1e-6).any():
        notes.append(f"{block} / {label}: finished training runs of the same seed disagree on eval_before "
                     f"({shown}): each seed counts once, with the mean of its runs.")
    if len(distinct) > 1:
        notes.append(f"{block} / {label}: the {len(vals)} finished training runs' eval_before differ ({shown}; e.g. "
                     f"different cold-start seeds): Base = mean ± std over the {n} seeds, one value per seed.")
    return True
