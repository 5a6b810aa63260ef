"""A directory the user names that cannot be written (``output_root``, ``SSPO_EXP_CACHE``): one line naming the field
and exit status 2, before anything is written or computed; it was an ``OSError`` traceback from the first ``mkdir``
(Hydra's own log directory, a sweep's queued markers, the stage cache)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.stages.cache import run_stage

HEAVY = ("torch", "transformers", "trl")
PROBE = ("import sys; from sspo_exp.cli import main; rc = main(sys.argv[1:]); "
         "print('HEAVY', [m for m in {heavy!r} if m in sys.modules], file=sys.stderr); sys.exit(rc)")


def _blocked(tmp_path):
    """A path whose parent is a regular file: no process, root included, can create it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "runs"


def test_writable_dir_creates_a_missing_directory_with_its_parents(tmp_path):
    assert writable_dir(tmp_path / "a" / "b", "output_root") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_writable_dir_names_the_field_the_value_and_the_reason(tmp_path):
    path = _blocked(tmp_path)
    with pytest.raises(ConfigError, match=rf"output_root='{path}': cannot create this directory \(Not a directory\)"):
        writable_dir(path, "output_root")


def test_writable_dir_refuses_a_directory_it_may_not_write(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only mount (root would pass a chmod)
    with pytest.raises(ConfigError, match="SSPO_EXP_CACHE=.*not writable"):
        writable_dir(tmp_path, "SSPO_EXP_CACHE")


def test_a_stage_cache_that_cannot_be_created_is_a_config_error_before_the_build(tmp_path):
    built = []
    with pytest.raises(ConfigError, match="SSPO_EXP_CACHE="):
        run_stage(_blocked(tmp_path), "stage-x", lambda work: built.append(work))
    assert built == []


@pytest.mark.parametrize("args", [
    ["train"],
    ["train", "-m", "seed=0,1"],  # a multirun: Hydra's sweep directory
    ["eval", "eval.model=x"],
    ["sweep", "sweeps/cpu_minigrid.yaml"],  # before any run is marked queued
])  # fmt: skip
def test_an_output_root_that_cannot_be_created_is_one_line_and_exit_2_before_heavy_imports(tmp_path, args):
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args, f"output_root={_blocked(tmp_path)}"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "HEAVY []" in out.stderr, out.stderr
    message = [line for line in out.stderr.split("HEAVY")[0].strip().splitlines()
               if not line.startswith("composed ")]  # a sweep's progress while it composes its points
    assert len(message) == 1 and "output_root=" in message[0] and "cannot create this directory" in message[0], message


def test_a_cold_start_whose_cache_cannot_be_created_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "SSPO_EXP_CACHE": str(_blocked(tmp_path))}
    out = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "cold-start", f"output_root={tmp_path}"], env=env,
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("sspo-exp cold-start: error: SSPO_EXP_CACHE="), out.stderr
