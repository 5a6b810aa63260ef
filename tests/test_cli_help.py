"""``sspo-exp --version``, ``sspo-exp train --help`` / ``eval --help`` (config groups, options, examples; no torch),
and Hydra's own ``--hydra-help`` still reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import sspo_exp
from sspo_exp import CONF_DIR, cli_help
from waiting import CEILING

HEAVY = ("torch", "transformers", "trl", "accelerate", "datasets", "hydra", "wandb")


def _cli(*args: str, probe: bool = False) -> subprocess.CompletedProcess:
    """``sspo-exp ARGS`` in a fresh interpreter; with ``probe``, the heavy modules it imported on the last line."""
    code = (f"import sys; from sspo_exp.cli import main; code = main({list(args)!r}); "
            f"print([m for m in {HEAVY!r} if m in sys.modules]) if {probe!r} else None; sys.exit(code)")  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}  # the page fits the terminal; wide enough to show whole first lines
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CEILING, env=env)


def test_version_is_the_installed_package_version():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"sspo-exp {version('sspo-exp')}"
    assert sspo_exp.__version__ == version("sspo-exp")
    assert _cli("-V").stdout == out.stdout


def test_train_help_lists_groups_options_and_examples_without_heavy_imports():
    out = _cli("train", "--help", probe=True)
    assert out.returncode == 0, out.stderr
    *page, imported = out.stdout.rstrip("\n").splitlines()
    assert imported == "[]"  # no torch / transformers / TRL / Hydra / W&B import for a help page
    text = "\n".join(page)
    for group in ("model", "objective", "gate", "dataset", "trainer", "launcher", "experiment"):
        assert any(line.startswith(f"  {group} ") for line in page), group
    # every option file of every group, the default marked, with the first prose line of its file
    for option, mark in [("tiny-fast", "*"), ("tiny", " "), ("qwen3-8b", " "), ("sspo", "*"), ("grpo", " "), ("atanlog", "*"),
                         ("gumbel", " "), ("cpu-fast", "*"), ("cpu", " "), ("gpu", " "), ("local", "*"), ("submitit_slurm", " "),
                         ("table1", " "), ("gsm8k_deepmath", " "), ("arithmetic", "*")]:  # fmt: skip
        assert f" {option}{mark} " in text, option
    assert "GRPO — SPEC.md Eq. 2: token ratios, arithmetic mean, advantage-aware clip." in text
    assert "@package" not in text  # Hydra directives are not prose
    assert "seed=0" in text and "output_root=runs" in text
    assert "examples:" in text and "sspo-exp train -m seed=0,1,2 objective=grpo,sspo" in text
    assert "--hydra-help" in text and "--cfg job" in text
    assert len(page) < 80 and "_target_" not in text and "per_device_batch_size" not in text  # not a config dump
    assert _cli("train", "-h").stdout.splitlines() == page


def test_eval_help_lists_its_keys_without_heavy_imports():
    out = _cli("eval", "--help", probe=True)
    assert out.returncode == 0, out.stderr
    *page, imported = out.stdout.rstrip("\n").splitlines()
    assert imported == "[]"
    text = "\n".join(page)
    assert "usage: sspo-exp eval [GROUP=OPTION ...] [KEY=VALUE ...]" in text and "submitit_slurm" in text
    assert "eval.model=???" in text and "eval.benchmarks=[gsm8k, math500, aime25]" in text and "eval.data.*" in text
    assert "sspo-exp eval eval.model=runs/<run_id>" in text


def test_hydra_help_still_reaches_hydra():
    out = _cli("train", "--hydra-help")
    assert out.returncode == 0 and "Hydra (" in out.stdout and "--cfg,-c" in out.stdout


def test_help_is_built_from_the_config_directory(tmp_path):
    """A new option file appears with its first prose line; a relocated default (``group@pkg``) is not a choice."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "big.yaml").write_text("# @package _global_\n#\n# The big one.\n# more\nname: big\n")
    (tmp_path / "model" / "small.yaml").write_text("name: small  # no leading comment\n")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "x.yaml").write_text("# X data\n")
    (tmp_path / "train.yaml").write_text("defaults:\n  - model: small\n  - dataset@eval_data: x\n  - _self_\n"
                                          "seed: 3   # the seed\nblock:     # a block\n  inner: 1\n")  # fmt: skip
    page = cli_help.job_help("train", tmp_path, width=200)
    assert "  model  big     The big one." in page and "  small*" in page
    assert "dataset" not in page.split("keys")[0]
    assert "seed=3" in page and "the seed" in page and "block.*" in page and "inner" not in page
    assert cli_help.config_groups(CONF_DIR / "eval.yaml") == [("launcher", "local")]  # where -m / --sweep jobs run


def test_help_flags_and_nothing_else_ask_for_the_page():
    assert cli_help.wants_help(["objective=grpo", "--help"]) and cli_help.wants_help(["-h"])
    assert not cli_help.wants_help(["--hydra-help"]) and not cli_help.wants_help(["--cfg", "job"])
    assert not cli_help.wants_help(["model.name=--help-me"])


# ------------------------------------------------------------------------------------ every --help answers at once
#: Libraries a help page must not import (each costs 0.5-2 s); timings are in benchmarks/cli_help.py, not here.
HELP_HEAVY = ("torch", "transformers", "trl", "wandb", "pandas", "matplotlib")


def _help_imports(command: str) -> tuple[int, list[str]]:
    code = (f"import sys\nfrom sspo_exp.cli import main\ntry:\n    code = main([{command!r}, '--help'])\n"
            f"except SystemExit as e:\n    code = e.code\n"
            f"print('HEAVY', [m for m in {HELP_HEAVY!r} if m in sys.modules], file=sys.stderr)\nsys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CEILING)
    return out.returncode, [line for line in out.stderr.splitlines() if line.startswith("HEAVY")]


def test_no_help_page_imports_torch_transformers_trl_wandb_pandas_or_matplotlib():
    from sspo_exp.cli import COMMANDS

    for command in COMMANDS:
        code, heavy = _help_imports(command)
        assert code == 0 and heavy == ["HEAVY []"], (command, code, heavy)


# ------------------------------------------------------------------------------ Hydra's shell completion, for real
def _bash_complete(line: str, tmp_path) -> list[str]:
    """Install completion as --hydra-help says (``eval "$(sspo-exp train -sc install=bash)"``) in a real bash, then
    call the completion function bash would call for ``line`` (cursor at the end)."""
    bin_dir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bin_dir, "sspo-exp")):
        import pytest

        pytest.skip("no sspo-exp console script beside this python (install the package: pip install -e .)")
    script = ('eval "$(sspo-exp train -sc install=bash)"\n'
              'COMP_LINE="$1"; COMP_POINT=${#1}; read -ra COMP_WORDS <<< "$1"; COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
              'hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"\n')  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", script, "bash", line], capture_output=True, text=True, timeout=CEILING,
                         env=env, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_shell_completion_as_advertised_completes_groups_options_and_commands(tmp_path):
    assert _bash_complete("sspo-exp train objective=g", tmp_path) == ["objective=gmpo", "objective=grpo",
                                                                       "objective=gspo"]  # fmt: skip
    assert "eval.backend=" in _bash_complete("sspo-exp eval eval.ba", tmp_path)
    assert _bash_complete("sspo-exp tr", tmp_path) == ["train"]
    install = _cli("train", "-sc", "install=bash").stdout
    assert install.rstrip().endswith("-F hydra_bash_completion sspo-exp")  # the program, not "sspo-exp train"


def test_completion_query_without_a_shell_is_one_line_and_exit_2():
    env = {k: v for k, v in os.environ.items() if k != "COMP_LINE"}
    for args in (["train", "-sc", "query=bash"], ["-sc", "query=bash"]):
        code = f"import sys; from sspo_exp.cli import main; sys.exit(main({args!r}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CEILING, env=env)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "install=bash" in out.stderr, out.stderr
