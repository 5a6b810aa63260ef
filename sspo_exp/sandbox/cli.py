"""``sspo-exp sandbox``: say how model code is isolated on this machine, then run the hostile-program table.

sspo-exp sandbox            # bubblewrap; exit 2 with the reason if it cannot run here
sspo-exp sandbox --weak     # the opt-in weak mode (what sandbox.allow_weak=true would give)
"""

from __future__ import annotations

import argparse
import sys

from sspo_exp.sandbox import box, hostile, isolation
from sspo_exp.sandbox.isolation import SandboxUnavailable


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sspo-exp sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--weak", action="store_true", help="test the weak mode (no bubblewrap) instead")
    args = parser.parse_args(argv)
    if args.weak:
        isolation.force_weak()
        print("mode: WEAK (no bubblewrap: a process with rlimits, the seccomp filter and, where it works, the cgroup)")
    else:
        try:
            print("mode:", box.check())
        except SandboxUnavailable as e:
            print(f"sspo-exp sandbox: {e}", file=sys.stderr)
            return 2
    rows = []
    with hostile.Bait() as bait:
        for case in hostile.CASES:
            row = hostile.run_case(case, bait, allow_weak=args.weak)
            rows.append(row)
            print(f"  {row.name}: {row.outcome} in {row.seconds:.2f} s", file=sys.stderr)
    print(hostile.TABLE_LIMITS)
    print(hostile.table(rows))
    bad = [r.name for r in rows if r.breaches or not r.output_ok or r.outcome != _expected(r.name)]
    if bad:
        print(f"NOT AS EXPECTED: {bad}", file=sys.stderr)
    return 1 if bad else 0


def _expected(name: str) -> str:
    return next(c.expect for c in hostile.CASES if c.name == name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
