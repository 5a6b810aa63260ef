"""Text helpers shared by the CPU study's tables (Markdown and LaTeX cells)."""

from __future__ import annotations

import math


def tex(s: str) -> str:
    """A Markdown cell as LaTeX: escape the specials, Greek letters and dashes as math."""
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    for a, b in (("μ", r"$\mu$"), ("τ", r"$\tau$"), ("ε", r"$\varepsilon$"), ("−", "$-$"), ("—", "---")):
        s = s.replace(a, b)
    return s


def method_label(method: str) -> str:
    return "SSPO (atanlog)" if method == "sspo" else method.upper()


def pm(mean, std, d: int, tex: bool = False) -> str:
    if mean is None or math.isnan(mean):
        return "—" if not tex else "---"
    sign = r" $\pm$ " if tex else " ± "
    return f"{mean:.{d}f}" + ("" if std is None or math.isnan(std) else f"{sign}{std:.{d}f}")


def sci(x) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.2e}"
