"""Render a :class:`~sspo_exp.report.tables.Table` as Markdown, LaTeX and CSV (ours, paper, ours − paper)."""

from __future__ import annotations

import math

import pandas as pd

from sspo_exp.report.tables import DECIMALS, LABELS, Cell, Table, row_label


def _num(x: float, sign: bool = False) -> str:
    return f"{x:+.{DECIMALS}f}" if sign else f"{x:.{DECIMALS}f}"


def cell_text(cell: Cell, pm: str = " ± ") -> str:
    """``mean ± std (n)``; ``—`` when missing; Δ Avg cells have no std."""
    if not math.isfinite(cell.mean):
        return "—" if "missing" in cell.marks or cell.note != "base" else ""
    text = _num(cell.mean)
    if math.isfinite(cell.std):
        text += f"{pm}{_num(cell.std)}"
    return text


def _style_md(text: str, cell: Cell) -> str:
    if "second" in cell.marks:
        text = f"<ins>{text}</ins>"
    if "best" in cell.marks and "baseline" in cell.marks:
        text = f"***{text}***"
    elif "best" in cell.marks:
        text = f"**{text}**"
    elif "baseline" in cell.marks:
        text = f"*{text}*"
    return text


def _style_tex(text: str, cell: Cell) -> str:
    if "best" in cell.marks:
        text = rf"\textbf{{{text}}}"
    if "second" in cell.marks:
        text = rf"\underline{{{text}}}"
    if "baseline" in cell.marks:
        text = rf"\textit{{{text}}}"
    return text


def _suffix(cell: Cell, col: str) -> str:
    n = f" ({cell.n})" if cell.n and col != "delta_avg" else ""
    return n + (" †" if "few_seeds" in cell.marks else "") + (" ‡" if "derived" in cell.marks else "")


def markdown(table: Table) -> str:
    head = "| Model | Method | " + " | ".join(LABELS.get(c, c) for c in table.columns) + " |"
    lines = [f"### {table.spec.name} — Pass@1 (%), mean ± std (seeds)", "", head,
             "|" + "---|" * (len(table.columns) + 2)]
    for b in table.blocks:
        for row in table.rows[b]:
            cells = [table.cells[(b, row, c)] for c in table.columns]
            texts = [_style_md(cell_text(x), x) + _suffix(x, c) for x, c in zip(cells, table.columns)]
            lines.append(f"| {b} | {row_label(row)} | " + " | ".join(texts) + " |")
    lines += ["", *footer(table)]
    if table.paper:
        lines += ["", f"#### Paper (ours − paper) — {table.spec.name}", "", head,
                  "|" + "---|" * (len(table.columns) + 2)]
        for b in table.blocks:
            for row in table.rows[b]:
                lines.append(f"| {b} | {row_label(row)} | " + " | ".join(
                    _paper_text(table, b, row, c) for c in table.columns) + " |")
        lines += ["", PAPER_CI_NOTE]
        lines += ["", *[f"Paper: {n}" for n in table.paper_notes]] if table.paper_notes else []
    return "\n".join(lines) + "\n"


PAPER_CI_NOTE = ("Each paper cell: the paper's value, (ours − paper), and whether the paper's value lies inside or "
                 "outside our seeds' 95% t-interval of the mean (df = n − 1, sspo_exp.report.stats); n < 2: one seed, "
                 "no interval. Inside means our seeds cannot tell our mean from the paper's value, not that they agree.")


def _paper_text(table: Table, block: str, row: str, col: str) -> str:
    p = table.paper.get((block, row, col))
    if p is None:
        return "n/a"
    ours = table.cells[(block, row, col)].mean
    mark = "§" if (block, row, col) in table.paper_unrepresentable else ""
    if not math.isfinite(ours):
        return f"{_num(p)}{mark} (—)"
    ci = table.paper_in_ci.get((block, row, col), "—")
    return f"{_num(p)}{mark} ({_num(ours - p, sign=True)})" + ("" if ci == "—" else f" {ci}")


def footer(table: Table) -> list[str]:
    """The stated rules, the chosen configurations, and every run or cell that is missing or not counted."""
    out = [
        "Cells: mean ± sample std over finished seeds (n); "
        + (f"† fewer than the expected {table.expected_seeds} seeds; " if table.expected_seeds > 1 else "")
        + "— no finished run. Marks per model and column on printed values: "
        "**best**, <ins>second</ins>, *strongest baseline* (best non-SSPO row). "
        + ("Δ Avg = mean of (cell − Base) over the benchmarks, from the means shown. " if table.spec.delta_avg
           else "")
        + "Base = runs with objective.name == 'base' (evaluation of the untrained model), else ‡ derived from "
        "the training runs' evaluation of their initial policy (eval_before).",
        f"Selection: per model and method, the configuration (W&B group) with the highest mean over seeds of "
        f"`{table.select_metric}` (ties: more seeds, then name).",
    ]
    out += [f"Note: {n}" for n in table.notes]
    if len(table.selections):
        out += ["", "Chosen configurations:", ""]
        for _, s in table.selections.iterrows():
            val = "n/a" if pd.isna(s["select_value"]) else f"{s['select_value']:.4g}"
            out.append(f"- {s['block']} / {row_label(s['row'])} [{s['columns']}]: `{s['config']}` "
                       f"({table.select_metric} = {val}, {s['seeds']} seeds, {s['candidates']} candidate configs)")
    missing = [(b, r, c, x.note) for (b, r, c), x in table.cells.items() if "missing" in x.marks]
    if missing:
        out += ["", "Missing cells:", ""]
        out += [f"- {b} / {row_label(r)} / {LABELS.get(c, c)}: {note or 'missing'}" for b, r, c, note in missing]
    if len(table.excluded):
        out += ["", "Runs not counted (not finished):", ""]
        for _, x in table.excluded.iterrows():
            step = "no steps" if pd.isna(x["last_step"]) else f"last step {int(x['last_step'])}"
            err = f"; {x['read_error']}" if isinstance(x["read_error"], str) else ""
            out.append(f"- {x['run_id']} ({x['name'] or 'unnamed'}): {x['state']}, {x['block']} / "
                       f"{row_label(x['row'])}, {step}{err}")
    return out


def latex(table: Table) -> str:
    cols = "ll" + "c" * len(table.columns)
    head = "Model & Method & " + " & ".join(LABELS.get(c, c) for c in table.columns) + r" \\"
    lines = [r"\begin{tabular}{" + cols + "}", r"\toprule", head.replace("Δ", r"$\Delta$"), r"\midrule"]
    for b in table.blocks:
        for row in table.rows[b]:
            texts = []
            for c in table.columns:
                x = table.cells[(b, row, c)]
                t = _style_tex(cell_text(x, pm=r" $\pm$ "), x)
                texts.append(t + (r"$^\dagger$" if "few_seeds" in x.marks else "")
                             + (r"$^\ddagger$" if "derived" in x.marks else ""))
            lines.append(f"{_tex_escape(b)} & {_tex_escape(row_label(row))} & " + " & ".join(texts) + r" \\")
        lines.append(r"\midrule" if b != table.blocks[-1] else r"\bottomrule")
    if not table.blocks:
        lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def csv_frame(table: Table) -> pd.DataFrame:
    """Long format: one line per cell, with its marks, chosen configuration and the paper's number."""
    recs = []
    for (b, r, c), x in table.cells.items():
        p = table.paper.get((b, r, c), math.nan)
        method, _, gate = r.partition("/")
        recs.append({"model": b, "method": method, "gate": gate, "column": c, "mean": x.mean, "std": x.std,
                     "n": x.n, "expected_n": table.expected_seeds, "marks": ",".join(sorted(x.marks)),
                     "config": x.config, "select_metric": table.select_metric, "paper": p,
                     "delta_to_paper": x.mean - p, "note": x.note,
                     "paper_not_k_over_n": (b, r, c) in table.paper_unrepresentable,
                     "paper_in_t95": table.paper_in_ci.get((b, r, c), "")})
    return pd.DataFrame(recs).round({"mean": 4, "std": 4, "paper": 4, "delta_to_paper": 4})
