"""``sspo-exp gates``: the paper's Figure 1 as a table — each SSPO gate's f(ρ) and token weight w(ρ) vs hard clip.

    sspo-exp gates [--tau 0.2] [--eps 0.2]
"""

from __future__ import annotations

import argparse
import math

RATIOS = (0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0)


def render(tau: float, eps: float) -> str:
    import torch  # torch (~1.5 s) only to draw the table: `sspo-exp gates --help` answers at once

    from .gates import GATES, clip_log_f, clip_weight  # imports torch: kept out of `--help` as above

    log_rho = torch.log(torch.tensor(RATIOS, dtype=torch.float64))
    positive = torch.ones_like(log_rho, dtype=torch.bool)
    t = torch.tensor(tau, dtype=torch.float64)
    rows = [("clip", torch.exp(clip_log_f(log_rho, positive, eps, eps)), clip_weight(log_rho, positive, eps, eps))]
    for name, gate in GATES.items():
        arg = t if gate.has_temperature else None
        rows.append((name, torch.exp(gate.log_f(log_rho, arg)), gate.weight(log_rho, arg)))
    head = "gate      " + "".join(f"{r:>8g}" for r in RATIOS)
    lines = [f"f(rho), A > 0 (tau = {tau}, clip eps = {eps})", head]
    lines += [f"{n:<10}" + "".join(f"{v:8.3f}" for v in f.tolist()) for n, f, _ in rows]
    lines += ["", "token weight w(rho) = rho f'/f (multiplies grad log pi, Eq. 14)", head]
    lines += [f"{n:<10}" + "".join(f"{v:8.3f}" for v in w.tolist()) for n, _, w in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sspo-exp gates", description=__doc__.splitlines()[0])
    parser.add_argument("--tau", type=float, default=0.2, help="gate temperature (default 0.2, the paper's tau_pos)")
    parser.add_argument("--eps", type=float, default=0.2, help="hard-clip epsilon for comparison (default 0.2)")
    args = parser.parse_args(argv)
    if not (args.tau > 0 and math.isfinite(args.tau)):
        parser.error(f"--tau must be a finite number > 0; got {args.tau}")
    if not 0 < args.eps < 1:
        parser.error(f"--eps must lie in (0, 1); got {args.eps}")
    print(render(args.tau, args.eps))
    return 0
