"""The package as a cluster user gets it: a wheel, installed into a fresh venv outside the checkout, run from a
directory that is not the checkout. The wheel must carry every config, sweep file and paper table (they live in
``sspo_exp/conf`` and ``sspo_exp/resources``); ``sspo-exp train``, ``report``, ``sweep --dry-run``, ``--help`` and
``--version`` must work from it.

One module-scoped build + install (a few minutes on 2 cores, mostly pip installing the dependencies from its cache;
torch is installed first, as the README says). Marked ``wheel``: ``pytest -m "not wheel"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sweeps_helpers import TINY, job_env
from waiting import CEILING

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parent.parent
#: Not copied into the build tree: environments, caches, outputs (a stale build/ would leak old files into the wheel).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                    "runs", "outputs", "multirun", "wandb", ".pytest_cache", ".hypothesis", "out")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=CEILING)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, a working directory outside the checkout, env, the wheel's path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, venv, work = tmp / "src", tmp / "dist", tmp / "venv", tmp / "work"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE, symlinks=True)  # build from a clean copy of the source
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], tmp, env)
    (wheel,) = dist.glob("sspo_exp-*.whl")
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    # --no-compile: byte-compiling every installed file (torch, transformers, ...) would be most of the install's
    # CPU time; Python compiles the few modules a run imports by itself
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    _run([*pip, "torch==2.13.0"], tmp, env)  # first: the CPU wheel, so no dependency pulls a CUDA build
    _run([*pip, str(wheel)], tmp, env)
    work.mkdir()
    env |= job_env(tmp) | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    return venv / "bin", work, env, wheel


def test_wheel_carries_every_config_sweep_and_paper_table(installed):
    *_, wheel = installed
    shipped = {p.relative_to(ROOT).as_posix() for d in ("conf", "resources") for p in (ROOT / "sspo_exp" / d).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert any(p.startswith("sspo_exp/conf/objective/") for p in shipped) and any(p.endswith(".csv") for p in shipped)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert shipped <= in_wheel, f"missing from the wheel: {sorted(shipped - in_wheel)}"


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, work, env, _ = installed
    where = "import sspo_exp; print(sspo_exp.__file__, sspo_exp.CONF_DIR)"
    out = _run([str(bin_dir / "python"), "-c", where], work, env)
    module, conf = out.stdout.split()
    assert "site-packages" in module and not Path(module).resolve().is_relative_to(ROOT)
    assert (Path(conf) / "train.yaml").is_file()
    version = _run([str(bin_dir / "sspo-exp"), "--version"], work, env).stdout.split()
    assert version[0] == "sspo-exp" and version[1] == installed[3].name.split("-")[1]  # the wheel's own version
    helped = _run([str(bin_dir / "sspo-exp"), "train", "--help"], work, env).stdout
    assert conf in helped and "sspo*" in helped and "atanlog*" in helped  # groups listed from the packaged conf dir


def test_shipped_sweep_resolves_by_name_from_the_wheel(installed):
    bin_dir, work, env, _ = installed
    out = _run([str(bin_dir / "sspo-exp"), "sweep", "table1", f"output_root={work / 'sweep-runs'}", "--dry-run"],
               work, env).stdout  # fmt: skip
    new = [line for line in out.splitlines() if line.startswith("new ") and "experiment=table1" in line]
    assert len(new) >= 18 and f"{len(new)} runs: 0 done, 0 running, 0 queued (skipped); {len(new)} to run" in out, out[-2000:]
    assert not (work / "sweep-runs").exists()  # a dry run launches nothing


def test_train_then_report_from_the_wheel(installed):
    bin_dir, work, env, _ = installed
    runs, out = work / "runs", work / "report"
    _run([str(bin_dir / "sspo-exp"), "train", *TINY, "trainer.max_steps=2", f"output_root={runs}"], work, env)
    (summary_file,) = runs.glob("*/summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["global_step"] == 2 and "eval/arithmetic/pass@1" in summary
    assert list(summary_file.parent.glob("wandb/offline-run-*/run-*.wandb"))
    _run([str(bin_dir / "sspo-exp"), "report", "--offline", str(runs), "--table", "mini", "--out", str(out),
          "--format", "md,csv", "--curves"], work, env)  # fmt: skip
    made = {p.suffix for p in out.rglob("*") if p.is_file() and p.stat().st_size > 0}
    assert {".md", ".csv", ".png"} <= made, sorted(p.name for p in out.rglob("*"))
    assert summary["run_id"].split("-")[0] in "".join(p.read_text() for p in out.rglob("*.md"))


def test_the_wheels_slurm_launcher_is_found_by_hydra(installed):
    """The wheel carries hydra_plugins/sspo_exp_launcher (no hydra_plugins/__init__.py, which would hide the other
    plugins), and launcher=submitit_slurm instantiates it from the installed files."""
    bin_dir, work, env, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hydra_plugins/sspo_exp_launcher/slurm.py" in names and "hydra_plugins/__init__.py" not in names
    probe = ("from hydra.core.plugins import Plugins; import hydra_plugins.sspo_exp_launcher.slurm as m; "
             "names = Plugins.instance().class_name_to_class; "
             "print(m.__file__, 'hydra_plugins.sspo_exp_launcher.slurm.SlurmLauncher' in names, "
             "'hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher' in names)")  # fmt: skip
    where, ours, theirs = _run([str(bin_dir / "python"), "-c", probe], work, env).stdout.split()
    assert "site-packages" in where and ours == theirs == "True"
