"""Benchmark ``sspo-exp report`` on 45 (or ``--runs``) runs × 2,000 steps of real W&B offline files.

    python benchmarks/report.py [--cache DIR] [--steps 2000] [--runs 450] [--workers N]

45 runs are written once by the installed wandb (3 models × GRPO/GSPO/GMPO/SAPO/SSPO × 3 seeds, every history
key of the logging contract, plus a Base eval run per model) into the cache directory and reused. ``--runs``
above 45 (a multiple of 45: a sweep) adds, per written run, copies that are other points of a sweep: the same
W&B file with only its run record changed (run id, ``trainer.learning_rate`` and the W&B group: each copy is
another setting with its own 3 seeds, as in a sweep), re-framed record by record in W&B's log format (writing
450 runs through wandb itself takes most of an hour here). Reported, wall and CPU seconds (the reader processes'
CPU included), with the load average (other work on the machine inflates wall times): time to read them (in
``--workers`` processes; default one per CPU), to build Table 2 (md/tex/csv), to draw the curves (3 metrics,
PNG + PDF), the total (targets: 45 runs ≤ 10 s, 450 runs ≤ 30 s on 2 cores), and our reader against W&B's own
reader ``wandb leet inspect --json`` on the same files (target ≥ 2× faster), both with and without turning its
JSON lines into rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

WANDB_CLI = shutil.which("wandb", path=str(Path(sys.executable).parent)) or "wandb"
MODELS = ("Qwen3-8B", "Qwen3-14B", "Qwen3-30B-A3B")
METHODS = ("grpo", "gspo", "gmpo", "sapo", "sspo")
SEEDS = 3
KEYS = ("reward_std", "rewards/answer_reward/mean", "rewards/format_reward/mean", "completions/mean_length",
        "grad_norm", "learning_rate", "objective/seq_weight_mean", "objective/token_ratio_mean",
        "objective/token_ratio_var", "objective/clip_frac", "objective/token_weight_mean", "objective/approx_kl")


def generate(cache: Path, steps: int) -> None:
    import wandb

    done = cache / f"done-v2-{steps}"
    if done.exists():
        return
    if any(cache.glob("wandb/offline-run-*")):
        raise SystemExit(f"{cache} holds runs from another version of this benchmark: delete it or pass --cache")
    for mi, model in enumerate(MODELS):
        for k, method in enumerate(("base",) + METHODS):
            for seed in range(1 if method == "base" else SEEDS):
                cfg = {"objective": {"name": method}, "gate": {"name": "atanlog" if method == "sspo" else "clip"},
                       "model": {"name": model}, "dataset": {"name": "dapo"}, "trainer": {"mu": 4}, "seed": seed}
                run = wandb.init(mode="offline", dir=str(cache), project="bench", id=f"{model}-{method}-{seed}",
                                 config=cfg, group=f"{model}-{method}", job_type=method)
                for s in range(0 if method == "base" else steps):
                    x = s / steps
                    row = {f"train/{key}": math.sin(s * 0.1 + j) for j, key in enumerate(KEYS)}
                    row.update({"train/reward": 0.3 + 0.1 * k * x + 0.05 * math.sin(s + seed),
                                "train/entropy": 0.8 - (0.5 - 0.08 * k) * x + 0.02 * math.cos(s * 0.7 + seed),
                                "train/objective/seq_weight_var": 0.01 * (1 + k) * (1.5 + math.sin(s * 0.3)),
                                "train/global_step": s})
                    if s % 100 == 99:
                        row["train/heldout_accuracy"] = 0.2 + 0.05 * k
                    run.log(row)
                for b, base in (("aime24", 20), ("aime25", 15), ("math500", 60), ("codeact", 20)):
                    run.summary[f"eval/{b}/pass@1"] = base + 2 * mi + 2 * k + seed * 0.5
                run.finish()
    done.touch()


def write_records(path: Path, records: list[bytes]) -> None:
    """A ``.wandb`` file holding ``records``, framed as W&B frames them (see ``sspo_exp.report.wandb_offline``)."""
    from sspo_exp.report.wandb_offline import (BLOCK_LEN, CHUNK_HEADER, FILE_HEADER, FILE_IDENT, FILE_MAGIC,
                                               FILE_VERSION, FIRST, FULL, LAST, MIDDLE, _TYPE_CRC)

    out = bytearray(FILE_HEADER.pack(FILE_IDENT, FILE_MAGIC, FILE_VERSION))
    for data in records:
        first, view = True, memoryview(data)
        while True:
            left = BLOCK_LEN - len(out) % BLOCK_LEN
            if left < CHUNK_HEADER.size:
                out += bytes(left)
                continue
            part, view = view[: left - CHUNK_HEADER.size], view[left - CHUNK_HEADER.size :]
            kind = (FULL if not len(view) else FIRST) if first else (LAST if not len(view) else MIDDLE)
            out += CHUNK_HEADER.pack(zlib.crc32(part, _TYPE_CRC[kind]), len(part), kind) + part
            first = False
            if not len(view):
                break
    path.write_bytes(bytes(out))


def replicate(cache: Path, runs: int) -> None:
    """Copies of the written trained runs as further sweep points until there are ``runs`` trained runs."""
    from wandb.proto import wandb_internal_pb2 as pb

    from sspo_exp.report.wandb_offline import read_records

    copies = runs // (len(MODELS) * len(METHODS) * SEEDS)
    if runs % (len(MODELS) * len(METHODS) * SEEDS):
        raise SystemExit(f"--runs must be a multiple of {len(MODELS) * len(METHODS) * SEEDS}, got {runs}")
    dest = copies_dir(cache, runs)
    if dest is None or (dest / "done").exists():
        return
    for src in sorted(cache.glob("wandb/offline-run-*/run-*.wandb")):
        if "-base-" in src.name:
            continue
        records, _ = read_records(src)
        i = next(i for i, b in enumerate(records) if pb.Record.FromString(b).WhichOneof("record_type") == "run")
        for j in range(1, copies):
            rec = pb.Record.FromString(records[i])
            rec.run.run_id = new_id = f"{rec.run.run_id}-c{j}"
            rec.run.run_group = f"{rec.run.run_group}-c{j}"  # another setting (its seeds share the group)
            for item in rec.run.config.update:
                if item.key == "trainer" or list(item.nested_key) == ["trainer"]:
                    item.value_json = json.dumps({**json.loads(item.value_json), "learning_rate": 1e-6 * (j + 1)})
            seg = dest / "wandb" / src.parent.name.replace(src.stem.removeprefix("run-"), new_id)
            seg.mkdir(parents=True, exist_ok=True)
            write_records(seg / f"run-{new_id}.wandb", records[:i] + [rec.SerializeToString()] + records[i + 1 :])
    (dest / "done").touch()


def copies_dir(cache: Path, runs: int) -> Path | None:
    """Where the copies for ``--runs`` live (None: no copies needed)."""
    copies = runs // (len(MODELS) * len(METHODS) * SEEDS)
    return cache / f"copies-v2-{copies}" if copies > 1 else None  # v2: copies are other groups


def leet_rows(run_dir: Path) -> list[dict]:
    """W&B's own reader: ``wandb leet inspect --json`` lines -> history rows (what our reader returns)."""
    out = subprocess.run([WANDB_CLI, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         check=True).stdout
    return [r["history"]["item"] for r in map(json.loads, out.splitlines()) if r.get("type") == "history"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "sspo-exp-bench-report")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--runs", type=int, default=45, help="trained runs: 45, or a multiple of 45 (a sweep)")
    p.add_argument("--workers", type=int, default=None, help="reader processes (default: one per CPU)")
    p.add_argument("--no-leet", action="store_true", help="skip the (slow) wandb leet comparison")
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    t = time.perf_counter()
    generate(args.cache, args.steps)
    replicate(args.cache, args.runs)
    print(f"files: {args.cache} (generated/checked in {time.perf_counter() - t:.1f} s)")

    from sspo_exp.report import render
    from sspo_exp.report.curves import plot_all
    from sspo_exp.report.sources import load
    from sspo_exp.report.tables import SPECS, build_table
    from sspo_exp.report.wandb_offline import default_workers, find_run_dirs, read_segment

    workers = args.workers or default_workers()
    target = 10.0 if args.runs <= 45 else 30.0

    out = Path(tempfile.mkdtemp(prefix="sspo-report-bench-"))
    import resource

    def children_cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    w0 = children_cpu()
    c0, t0 = time.process_time(), time.perf_counter()
    roots = [args.cache / "wandb"] + ([copies_dir(args.cache, args.runs)] if copies_dir(args.cache, args.runs) else [])
    runs, history = load(offline=roots, workers=workers)
    c1, t1 = time.process_time(), time.perf_counter()
    w1 = children_cpu() - w0  # the reader processes' CPU time (counted once they have exited)
    table = build_table(runs, SPECS["2"], allow_mixed_profiles=True)  # timing only: a cache from before profiles too
    (out / "table_2.md").write_text(render.markdown(table))
    (out / "table_2.tex").write_text(render.latex(table))
    render.csv_frame(table).to_csv(out / "table_2.csv", index=False)
    c2, t2 = time.process_time(), time.perf_counter()
    figs = plot_all(runs, history, SPECS["2"], out, workers=workers)
    c3, t3 = time.process_time(), time.perf_counter()
    w2 = children_cpu() - w0 - w1  # the drawing processes' CPU time
    trained = runs[runs["objective.name"] != "base"]
    print(f"{len(trained)} trained runs × {int(trained['last_step'].max()) + 1} steps (+{len(runs) - len(trained)} "
          f"base eval runs), {len(history)} history rows × {history.shape[1]} columns")
    load_avg = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu_total = c3 - c0 + w1 + w2
    print(f"wall / CPU seconds (load average {load_avg[0]:.1f}, {load_avg[1]:.1f}, {load_avg[2]:.1f} over 1, 5, "
          f"15 min on {os.cpu_count()} CPUs: wall times include waiting for other work on the machine)")
    print(f"read   {t1 - t0:6.2f} / {c1 - c0 + w1:6.2f}  ({workers} reader processes: {w1:.2f} s CPU; this "
          f"process {c1 - c0:.2f} s)\n"
          f"table  {t2 - t1:6.2f} / {c2 - c1:6.2f}  (Table 2: md, tex, csv)\n"
          f"curves {t3 - t2:6.2f} / {c3 - c2 + w2:6.2f}  ({len(figs)} files: reward, entropy, seq_weight_var × png, "
          f"pdf; drawn in {min(3, workers)} processes: {w2:.2f} s CPU)\n"
          f"total  {t3 - t0:6.2f} / {cpu_total:6.2f}  (target: wall <= {target:g} s on 2 idle cores; "
          f"{'met' if t3 - t0 <= target else 'NOT met'} here)  -> {out}")
    cores = min(workers, os.cpu_count() or 1)
    # reading: its CPU shared by the cores; table: serial; curves: prepared here, then 3 figures on the cores
    idle = (c1 - c0 + w1) / cores + (c2 - c1) + (c3 - c2) + w2 * math.ceil(3 / cores) / 3
    print(f"CPU-bound estimate on {cores} idle cores: {idle:.1f} s (reading's CPU shared by the reader processes, "
          f"the table serial, 3 figures over {cores} processes; CPU times are inflated too on a loaded machine)")

    if args.no_leet:
        return 0
    dirs = find_run_dirs([args.cache / "wandb"])
    t4 = time.perf_counter()
    ours = [read_segment(d).history for d in dirs]
    t5 = time.perf_counter()
    for d in dirs:
        subprocess.run([WANDB_CLI, "leet", "inspect", "--json", str(d)], stdout=subprocess.DEVNULL, check=True)
    t6 = time.perf_counter()
    theirs = [leet_rows(d) for d in dirs]
    t7 = time.perf_counter()
    assert ours == theirs, "our reader and wandb leet inspect disagree"
    print(f"records -> rows, {len(dirs)} files: ours {t5 - t4:.2f} s; wandb leet inspect --json {t6 - t5:.2f} s "
          f"(dump only, {(t6 - t5) / (t5 - t4):.1f}x ours), {t7 - t6:.2f} s with JSON parsing "
          f"({(t7 - t6) / (t5 - t4):.1f}x ours); identical rows: yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
