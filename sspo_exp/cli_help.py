"""``sspo-exp train --help`` and ``sspo-exp eval --help``: the config groups, their options and examples.

Hydra's own ``--help`` prints the whole composed config (~120 lines). This page is built from the packaged config
directory instead (``sspo_exp/conf``): each group's option files with the first comment line of each, the default
option marked, the top-level keys with their comments, and a few examples. It imports only PyYAML — no torch,
transformers or TRL — so it answers at once. Hydra's ``--hydra-help`` and ``--cfg job`` are left to Hydra.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from sspo_exp import CONF_DIR

HELP_FLAGS = ("-h", "--help")

EXAMPLES = {
    "train": [
        ("sspo-exp train", "the embedded CPU job: tiny model, generated arithmetic, SSPO/atanlog, W&B offline"),
        ("sspo-exp train objective=grpo objective.eps_low=0.1 seed=1", "a baseline with one field changed"),
        ("sspo-exp train objective=sspo gate=siglog gate.tau_neg=0.6 gate.tau_pos=0.5", "another SSPO gate"),
        ("sspo-exp train -m seed=0,1,2 objective=grpo,sspo", "a Hydra multirun (6 runs)"),
        ("sspo-exp train experiment=table1 objective=sspo gate=atanlog seed=0", "the paper's Table 1 setting (GPU)"),
        ("sspo-exp train model=local model.path=/models/m model.name=m", "your own HF model directory"),
        ("sspo-exp train trainer.max_steps=2 trainer.eval_samples=8 --cfg job",
         "print the composed config, run nothing"),
    ],
    "eval": [
        ("sspo-exp eval eval.model=runs/<run_id>", "a trained run (dir or id); writes <run_dir>/reeval/<profile>/"),
        ("sspo-exp eval eval.model=Qwen/Qwen2.5-7B-Instruct eval.backend=vllm eval.dtype=bfloat16",
         "a base-model row of Table 1 (score its trained rows the same way: docs/evaluation.md)"),
        ("sspo-exp eval eval.model=/models/m eval.benchmarks=[math500] eval.data.math500=/data/math500.jsonl",
         "local benchmark data"),
        ("sspo-exp eval --sweep sweeps/table1.yaml eval.backend=vllm eval.dtype=bfloat16 launcher=submitit_slurm",
         "every finished run of a sweep, one job each (--dry-run: which; --group G: a W&B group's runs; --help)"),
        ("sspo-exp eval eval.model=runs/<run_id> --cfg job", "print the composed config, run nothing"),
    ],
}
ABOUT = {
    "train": "Train a policy with one objective (TRL's GRPOTrainer with our loss), W&B offline by default.",
    "eval": "Greedy Pass@1 of a run or model on the paper's benchmarks, with provenance.",
}
#: The block of a job's primary config whose fields are listed (train's options are its groups; eval's its fields).
FIELD_BLOCKS = {"train": None, "eval": "eval"}


def wants_help(argv: list[str]) -> bool:
    """The arguments ask for this page (``-h``/``--help``; ``--hydra-help`` goes to Hydra)."""
    return any(a in HELP_FLAGS for a in argv)


def show(job: str, conf_dir: Path = CONF_DIR) -> int:
    """Print the help page of ``job`` ("train" or "eval"); the exit status for the dispatcher."""
    print(job_help(job, conf_dir))
    return 0


def job_help(job: str, conf_dir: Path = CONF_DIR, width: int | None = None) -> str:
    width = width or max(80, shutil.get_terminal_size((120, 24)).columns)
    primary = conf_dir / f"{job}.yaml"
    groups = config_groups(primary)
    lines = [f"usage: sspo-exp {job} {'[GROUP=OPTION ...] ' if groups else ''}[KEY=VALUE ...] [-m] [--cfg job] "
             "[--hydra-help]", "", ABOUT[job],
             f"Configs: {conf_dir} (each field is documented where it is declared).", ""]  # fmt: skip
    if groups:
        lines.append("config groups (GROUP=OPTION; * = default):")
        name_w = max(len(g) for g, _ in groups) + 2
        options = {group: group_options(conf_dir / group) for group, _ in groups}
        opt_w = max(len(o) for opts in options.values() for o, _ in opts) + 3
        for group, default in groups:
            for i, (option, about) in enumerate(options[group]):
                mark = "*" if option == default else " "
                head = f"  {group if i == 0 else '':<{name_w}}{option + mark:<{opt_w}}"
                lines.append(_fit(head + about, width))
        lines.append("")
    fields = top_fields(primary, FIELD_BLOCKS[job])
    if fields:
        prefix = f"{FIELD_BLOCKS[job]}." if FIELD_BLOCKS[job] else ""
        lines.append(f"keys (KEY=VALUE; defaults from {primary.name}):")
        key_w = max(len(prefix + label) for label, _ in fields) + 2
        for label, about in fields:
            lines.append(_fit(f"  {prefix + label:<{key_w}}{about}", width))
        lines.append("")
    lines.append("examples:")
    for cmd, about in EXAMPLES[job]:
        lines += [f"  # {about}", f"  {cmd}"]
    lines += ["", f"sspo-exp {job} --cfg job [overrides]   the composed config after overrides (every field)",
              f"sspo-exp {job} --hydra-help           Hydra's own flags (-m, --cfg, --info, shell completion)"]
    return "\n".join(lines)


def config_groups(primary: Path) -> list[tuple[str, str | None]]:
    """(group, default option) for each config group in the defaults list of ``primary`` (groups with a directory)."""
    import yaml

    out = []
    for entry in yaml.safe_load(primary.read_text()).get("defaults", []):
        if not isinstance(entry, dict):  # _self_
            continue
        ((key, default),) = entry.items()
        group = key.removeprefix("optional ").strip()
        if "@" in group or not (primary.parent / group).is_dir():  # a package-relocated default is not a user choice
            continue
        out.append((group, default))
    return out


def group_options(group_dir: Path) -> list[tuple[str, str]]:
    """(option, the first comment line of its file) for every ``*.yaml`` in a group directory."""
    return [(p.stem, first_comment(p)) for p in sorted(group_dir.glob("*.yaml"))]


def first_comment(path: Path) -> str:
    """The first ``#`` line of a config file that is prose (not a Hydra ``@package`` directive)."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            continue
        text = text.lstrip("#").strip()
        if text and not text.startswith("@package"):
            return text
    return ""


_FIELD = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):\s*(?P<value>[^#]*?)\s*(?:#\s*(?P<about>.*))?$")


def top_fields(primary: Path, block: str | None) -> list[tuple[str, str]]:
    """(``KEY=DEFAULT``, its comment) for the fields directly in ``block`` of ``primary`` (top level if None).

    A mapping (its value on the following lines) is shown as ``KEY.*``; ``defaults`` and ``hydra`` are left out.
    """
    lines = primary.read_text().splitlines()
    indent, inside, out = (0 if block is None else 2), block is None, []
    for n, line in enumerate(lines):
        m = _FIELD.match(line)
        if not m:
            continue
        level = len(m["indent"])
        if block is not None and level == 0:
            inside = m["key"] == block
            continue
        if not inside or level != indent or m["key"] in ("defaults", "hydra"):
            continue
        label = f"{m['key']}={m['value']}" if m["value"] else f"{m['key']}.*"
        more = n + 1 < len(lines) and re.match(r"^ {%d,}#" % (level + 3), lines[n + 1])  # the comment goes on
        out.append((label, (m["about"] or "") + (" …" if more and m["about"] else "")))
    return out


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(show(sys.argv[1] if len(sys.argv) > 1 else "train"))
