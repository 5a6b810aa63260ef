"""A directory the user names that cannot be written (``output_root``, ``SSPO_EXP_CACHE``, an Optuna journal's, a
report's ``--out``): one line naming the field and exit status 2, before anything is written or computed; it was an
``OSError`` traceback from the first ``mkdir`` (Hydra's own log directory, a sweep's queued markers, the stage cache,
every Optuna trial in turn)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli_errors import _run

from sspo_exp.errors import ConfigError, writable_dir
from sspo_exp.report import cpu_study
from sspo_exp.stages.cache import STAGE_FILE, check_cache, run_stage
from sspo_exp.sweeps import grid, optuna_cli


def _blocked(tmp_path):
    """A path whose parent is a regular file: no process, root included, can create it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "runs"


def _one_line(out) -> str:
    """The single line a user's mistake prints (a sweep's progress while it composes its points aside); no
    traceback, no torch, transformers or TRL imported."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "HEAVY []" in out.stderr, out.stderr
    lines = [line for line in out.stderr.split("HEAVY")[0].strip().splitlines() if not line.startswith("composed ")]
    assert len(lines) == 1, lines
    return lines[0]


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


def test_writable_dir_without_create_checks_the_way_there_and_creates_nothing(tmp_path, monkeypatch):
    assert writable_dir(tmp_path / "a" / "b", "--out", create=False) == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match=r"--out=.*a-file is not a directory"):
        writable_dir(_blocked(tmp_path) / "x", "--out", create=False)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(ConfigError, match=rf"\({tmp_path} is not writable\)"):
        writable_dir(tmp_path / "a" / "b", "--out", create=False)
    with pytest.raises(ConfigError, match=r"--out=.*: this directory is not writable"):  # it exists: no "create"
        writable_dir(tmp_path, "--out", create=False)


def _unsearchable(monkeypatch, locked: Path) -> None:
    """What Python 3.11 does behind a directory this user may not search: ``Path.exists``/``is_file`` raise
    PermissionError, ``os.path.exists`` answers False (``locked`` itself can be seen)."""
    def behind(path) -> bool:
        return str(path).startswith(str(locked) + os.sep)

    def refuse(real):
        def probe(self):
            if behind(self):
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)
        return probe

    monkeypatch.setattr(Path, "exists", refuse(Path.exists))
    monkeypatch.setattr(Path, "is_file", refuse(Path.is_file))
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: not behind(path) and real_exists(path))
    monkeypatch.setattr(os, "access", lambda path, mode: False)


def test_writable_dir_without_create_judges_a_path_behind_an_unsearchable_directory_in_one_line(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _unsearchable(monkeypatch, locked)
    with pytest.raises(ConfigError, match=rf"cannot create this directory \({locked} is not writable\)"):
        writable_dir(locked / "deep" / "out", "--out", create=False)


def test_a_cache_this_user_cannot_look_into_is_one_config_error(tmp_path, monkeypatch):
    locked = tmp_path / "cache"
    locked.mkdir()
    _unsearchable(monkeypatch, locked)
    with pytest.raises(ConfigError, match=r"SSPO_EXP_CACHE=.*cannot look into .*stage-x"):
        check_cache("stage-x", locked)


def test_a_sweep_under_an_output_root_it_cannot_look_into_is_one_config_error(tmp_path, monkeypatch):
    def plan(jobs):
        raise PermissionError(13, "Permission denied", "/root/x/run-s0/summary.json")

    monkeypatch.setattr(grid, "plan", plan)
    with pytest.raises(ConfigError, match=r"output_root: this user cannot look into /root/x/run-s0/summary.json"):
        grid.run_sweep("sweeps/cpu_minigrid.yaml", ["output_root=/root/x"], dry_run=True)


def test_a_stage_cache_that_cannot_be_created_is_a_config_error_before_the_build(tmp_path):
    built = []
    with pytest.raises(ConfigError, match="SSPO_EXP_CACHE="):
        run_stage(_blocked(tmp_path), "stage-x", lambda work: built.append(work))
    assert built == []


def test_a_read_only_cache_that_holds_the_stage_already_is_fine(tmp_path, monkeypatch):
    (tmp_path / "stage-x").mkdir()
    (tmp_path / "stage-x" / STAGE_FILE).write_text("{}")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    check_cache("stage-x", tmp_path)  # published: only read
    with pytest.raises(ConfigError, match="SSPO_EXP_CACHE=.*not writable"):
        check_cache("stage-y", tmp_path)  # it would have to be built here


@pytest.mark.parametrize("args, prefix", [
    (["train"], "sspo-exp train: error: output_root="),
    (["train", "-m", "seed=0,1"], "sspo-exp train: error: output_root="),  # a multirun: Hydra's sweep directory
    (["eval", "eval.model=x"], "sspo-exp eval: error: output_root="),
    (["sweep", "sweeps/cpu_minigrid.yaml"], "error: output_root="),  # before any run is marked queued
])  # fmt: skip
def test_an_output_root_that_cannot_be_created_is_one_line_and_exit_2_before_heavy_imports(tmp_path, args, prefix):
    out = _run(tmp_path, *args, f"output_root={_blocked(tmp_path)}")
    line = _one_line(out)
    assert line.startswith(prefix) and "cannot create this directory" in line, line
    assert out.stdout == "", out.stdout  # a sweep: before its plan is printed


def test_a_dry_run_sweep_writes_nothing_so_it_does_not_refuse_an_output_root(tmp_path):
    out = _run(tmp_path, "sweep", "sweeps/cpu_minigrid.yaml", f"output_root={_blocked(tmp_path)}", "--dry-run")
    assert out.returncode == 0 and "to run" in out.stdout, out.stderr


def test_a_home_relative_output_root_is_checked_where_the_runs_go(tmp_path, monkeypatch):
    """``~`` is expanded for the runs (sspo_exp.rundir), so that is the directory checked (Hydra's own, literal
    ``~/...`` under the working directory, is checked too)."""
    monkeypatch.setenv("HOME", str(_blocked(tmp_path)))
    line = _one_line(_run(tmp_path, "train", "output_root='~/runs'"))  # quoted: Hydra's override grammar
    assert line.startswith("sspo-exp train: error: output_root=") and "a-file/runs/runs" in line, line


@pytest.mark.parametrize("command", ["train", "cold-start"])
def test_a_stage_cache_that_cannot_be_created_is_one_line_before_torch_loads(tmp_path, monkeypatch, command):
    monkeypatch.setenv("SSPO_EXP_CACHE", str(_blocked(tmp_path)))
    line = _one_line(_run(tmp_path, command, f"output_root={tmp_path / 'runs'}"))
    assert line.startswith(f"sspo-exp {command}: error: SSPO_EXP_CACHE="), line
    assert not any((tmp_path / "runs").glob("*-s0-*"))  # no run directory made


def test_optuna_refuses_an_unwritable_journal_and_output_root_in_one_line(tmp_path):
    line = _one_line(_run(tmp_path, "optuna", "create", "sweeps/optuna_sspo.yaml", "--storage",
                          str(_blocked(tmp_path) / "study.journal")))  # fmt: skip
    assert line.startswith("error: --storage=") and "study.journal': cannot create its directory" in line, line
    journal = str(tmp_path / "study.journal")
    assert _run(tmp_path, "optuna", "create", "sweeps/optuna_sspo.yaml", "--storage", journal).returncode == 0
    # a worker would fail every trial in turn (Optuna records each trial's exception and goes on) and exit 0
    line = _one_line(_run(tmp_path, "optuna", "worker", "--study", "sspo-atanlog-cpu", "--storage", journal,
                          "--n-trials", "1", f"output_root={_blocked(tmp_path)}"))  # fmt: skip
    assert line.startswith("error: output_root=") and "cannot create this directory" in line, line


def test_a_worker_checks_the_output_root_a_trial_would_compose(tmp_path, monkeypatch):
    """``objective.eps_low`` composes only beside a sampled ``objective=grpo`` (the study's first point is used); an
    override that composes nowhere still has its output_root checked; ``~`` is where the runs go, and nothing is made
    for Hydra (a trial makes no Hydra directory)."""
    space = {"overrides": [f"output_root={_blocked(tmp_path)}"], "params": {"objective": {"choices": ["grpo", "gmpo"]}}}
    for extra in (["objective.eps_low=0.1"], ["trainer.epochs=3"]):
        with pytest.raises(ConfigError, match="output_root="):
            optuna_cli.check_trials_output_root(space, extra)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    optuna_cli.check_trials_output_root({"overrides": ["output_root='~/runs'"], "params": {}}, [])
    assert (tmp_path / "home" / "runs").is_dir() and not (tmp_path / "~").exists()


def test_optuna_submit_with_a_journal_checks_the_output_root_before_any_job(tmp_path, capsys):
    journal = str(tmp_path / "study.journal")
    assert _run(tmp_path, "optuna", "create", "sweeps/optuna_sspo.yaml", "--storage", journal).returncode == 0
    assert optuna_cli.main(["submit", "--study", "sspo-atanlog-cpu", "--storage", journal, "--launcher",
                            "submitit_local", f"output_root={_blocked(tmp_path)}"]) == 2  # fmt: skip
    assert capsys.readouterr().err.startswith("error: output_root=")
    assert not (tmp_path / ".submitit").exists()  # no job was submitted


def test_optuna_show_reads_a_journal_it_may_not_write(tmp_path, monkeypatch, capsys):
    journal = str(tmp_path / "study.journal")
    assert _run(tmp_path, "optuna", "create", "sweeps/optuna_sspo.yaml", "--storage", journal).returncode == 0
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)  # a read-only mount
    assert optuna_cli.main(["show", "--study", "sspo-atanlog-cpu", "--storage", journal]) == 0, capsys.readouterr().err
    assert optuna_cli.main(["worker", "--study", "sspo-atanlog-cpu", "--storage", journal, "--n-trials", "0"]) == 2
    assert "--storage=" in capsys.readouterr().err
    missing = tmp_path / "typo" / "study.journal"  # reading creates nothing: one line
    assert optuna_cli.main(["show", "--study", "sspo-atanlog-cpu", "--storage", str(missing)]) == 2
    assert "no journal file there" in capsys.readouterr().err and not missing.parent.exists()


def test_eval_refuses_an_output_dir_it_cannot_create_before_the_model_loads(tmp_path):
    line = _one_line(_run(tmp_path, "eval", "eval.model=x", f"eval.output_dir={_blocked(tmp_path)}",
                          f"output_root={tmp_path / 'runs'}"))  # fmt: skip
    assert line.startswith("sspo-exp eval: error: eval.output_dir=") and "a-file is not a directory" in line, line


def test_the_cpu_study_refuses_an_out_or_data_it_cannot_create_before_reading(tmp_path, capsys):
    assert cpu_study.main(["publish", str(tmp_path / "data"), str(_blocked(tmp_path))]) == 2
    assert capsys.readouterr().err.startswith("cpu_study publish: out=")
    assert cpu_study.main(["collect", str(tmp_path / "runs"), str(_blocked(tmp_path) / "data")]) == 2
    assert capsys.readouterr().err.startswith("cpu_study collect: data=")


def test_report_refuses_an_unwritable_out_before_reading_any_run(tmp_path):
    line = _one_line(_run(tmp_path, "report", "--offline", str(tmp_path / "nowhere"), "--out",
                          str(_blocked(tmp_path) / "tables")))  # fmt: skip
    assert line.startswith("sspo-exp report: --out=") and "a-file is not a directory" in line, line
