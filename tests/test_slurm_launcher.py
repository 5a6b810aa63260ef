"""sspo-exp's SLURM launcher (hydra_plugins/sspo_exp_launcher/slurm.py) without a cluster: a failed run raises in its
task, every job's script exports SLURM_KILL_BAD_EXIT=1 before srun, and a sweep gets one result per job, naming the
rank that failed first. tests/test_slurm_distributed.py runs it on a real SLURM."""

from __future__ import annotations

import os
import time

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from hydra_plugins.sspo_exp_launcher.slurm import RankFailed, SlurmLauncher, error_line, job_return
from submitit.core import utils
from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import SlurmJob

from sspo_exp import CONF_DIR
from sspo_exp.sweeps.distributed import KILL_BAD_EXIT

EADDRINUSE = "torch.distributed.DistNetworkError: port 15072, code: -98, name: EADDRINUSE"
CLOSED = "RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer"
POINT = ["objective=grpo"]


def _returned(status: JobStatus, value) -> JobReturn:
    ret = JobReturn()
    ret.status, ret.return_value = status, value
    return ret


def _trace(error: str) -> str:
    return f'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n{error}\n'


@pytest.fixture
def finished(tmp_path, monkeypatch):
    """Make a finished job as submitit sees it: per task, a result file holding ("success", a JobReturn) or ("error",
    a traceback), written as submitit's process_job writes them, or none (a task srun ended); ``ages``: seconds ago
    each result was written."""
    monkeypatch.setattr(SlurmJob, "_results_timeout_s", 0)  # a missing result: no 15 s wait for a late file
    monkeypatch.setattr(SlurmJob, "wait", lambda self: None)

    def make(*outcomes, ages=None, job_id="71_0") -> SlurmJob:
        job = SlurmJob(str(tmp_path / "%j"), job_id, tasks=tuple(range(len(outcomes))))
        for rank, outcome in enumerate(outcomes):
            path = job.task(rank).paths.result_pickle
            path.parent.mkdir(parents=True, exist_ok=True)
            if outcome is not None:
                utils.cloudpickle_dump(("error", outcome) if isinstance(outcome, str) else ("success", outcome), path)
                written = time.time() - (ages or [0] * len(outcomes))[rank]
                os.utime(path, (written, written))
        return job

    return make


def _failure(result: JobReturn) -> str:
    assert result.status == JobStatus.FAILED and result.overrides == POINT
    with pytest.raises(Exception) as e:  # noqa: PT011
        result.return_value  # noqa: B018 - JobReturn re-raises the job's exception
    # by name: Hydra's plugin scan may load a second copy of the module, whose RankFailed is another class object
    assert type(e.value).__name__ == RankFailed.__name__ and type(e.value).__module__ == RankFailed.__module__
    return str(e.value)


def test_rank_0s_result_is_the_jobs(finished):
    ok = _returned(JobStatus.COMPLETED, {"global_step": 4})
    assert job_return(finished(ok, None), POINT).return_value == {"global_step": 4}


def test_rank_0s_own_error_is_named_in_one_line(finished, tmp_path):
    """The last line of the task's traceback, not of submitit's footer (the log paths)."""
    failure = _failure(job_return(finished(_trace(EADDRINUSE), None), POINT))
    assert failure == f"{EADDRINUSE} (SLURM job 71_0, rank 0; log {tmp_path}/71_0/71_0_0_log.err)"


def test_the_rank_that_failed_first_is_named_not_the_one_its_failure_broke(finished):
    """Rank 2 failed; rank 0's gloo then lost its peer and failed a little later; srun ended rank 1."""
    job = finished(_trace(CLOSED), None, _trace("ValueError: rank 2 broke"), ages=[5, 0, 9])
    assert _failure(job_return(job, POINT)).startswith("ValueError: rank 2 broke (SLURM job 71_0, rank 2; log ")


def test_a_rank_0_that_srun_ended_points_at_the_rank_that_failed(finished):
    failure = _failure(job_return(finished(None, None, _trace(EADDRINUSE)), POINT))
    assert f"{EADDRINUSE} (SLURM job 71_0, rank 2; log " in failure


def test_a_job_whose_ranks_all_ended_without_a_result_names_rank_0(finished):
    failure = _failure(job_return(finished(None, None), POINT))
    assert failure.startswith("ended without a result") and "(SLURM job 71_0, rank 0; log " in failure


def test_the_error_line_is_the_exception_after_the_last_frame():
    """A rule inside the traceback (torch's ChildFailedError prints them), a chained exception and a message of several
    lines: the line is the last exception, whole."""
    rule = "-" * 60
    trace = (f"Traceback (most recent call last):\n  File \"a.py\", line 3, in f\n    g()\nKeyError: 'x'\n\nDuring "
             f"handling of the above exception, another exception occurred:\n\n{rule}\nTraceback (most recent call "
             f"last):\n  File \"b.py\", line 9, in h\n    raise ChildFailedError(name, failures)\n    ^^^^^^^^^^^\n"
             f"ChildFailedError: train.py FAILED\n{rule}\nFailures:\n  <NO_OTHER_FAILURES>\n")  # fmt: skip
    error = FailedJobError(f"Job (task=1) failed during processing with trace:\n{'-' * 22}\n{trace}\n{'-' * 22}\n"
                           f"You can check full logs with 'job.stderr(1)' and 'job.stdout(1)'or at paths:\n  - /x.err")  # fmt: skip
    assert error_line(error) == f"ChildFailedError: train.py FAILED {rule} Failures:"
    assert error_line(FailedJobError("no rule at all\nValueError: boom")) == "no rule at all ValueError: boom"
    assert len(error_line(FailedJobError("x" * 1000))) == 400


def test_a_failed_run_raises_in_its_task_and_a_finished_one_returns(monkeypatch):
    launcher = SlurmLauncher(setup=None, submitit_folder="x", max_num_timeout=0)
    error = RuntimeError("the run failed")
    monkeypatch.setattr(SubmititSlurmLauncher, "__call__", lambda self, *a, **k: _returned(JobStatus.FAILED, error))
    with pytest.raises(RuntimeError) as raised:
        launcher([], "hydra.sweep.dir", 0, "id", {})
    assert raised.value is error  # submitit saves it as the task's error; the task exits 1
    done = _returned(JobStatus.COMPLETED, {"global_step": 4})
    monkeypatch.setattr(SubmititSlurmLauncher, "__call__", lambda self, *a, **k: done)
    assert launcher([], "hydra.sweep.dir", 0, "id", {}) is done


def _launcher(*overrides: str):
    """launcher=submitit_slurm as Hydra instantiates it (with the composed config it is set up with)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        cfg = compose("train", overrides=["launcher=submitit_slurm", *overrides], return_hydra_config=True)
    launcher = Plugins.instance()._instantiate(cfg.hydra.launcher)
    # Hydra's plugin scan loads its own copy of the module: the class is compared by name
    assert (type(launcher).__module__, type(launcher).__name__) == (SlurmLauncher.__module__, "SlurmLauncher")
    launcher.config = cfg
    return launcher


@pytest.mark.parametrize("setup", [None, ["source my_env.sh"]])
def test_launch_submits_with_the_step_ending_line_and_returns_every_jobs_result(finished, tmp_path, monkeypatch, setup):
    """launch() gives submitit the setup lines with SLURM_KILL_BAD_EXIT=1 first, the folder and the requeue budget, maps
    this launcher over the points, and returns one result per job: a failed job does not hide the other's."""
    seen = {}

    class Executor:  # submitit.AutoExecutor, recorded; its jobs have already finished
        def __init__(self, folder, cluster, **init):
            seen.update(folder=folder, cluster=cluster, init=init)

        def update_parameters(self, **params):
            seen["params"] = params

        def map_array(self, fn, *columns):
            seen["fn"], seen["columns"] = fn, columns
            return [finished(_trace(EADDRINUSE), None, job_id="71_0"),
                    finished(_returned(JobStatus.COMPLETED, {"global_step": 4}), None, job_id="71_1")]  # fmt: skip

    monkeypatch.setattr(submitit, "AutoExecutor", Executor)
    setup_override = "null" if setup is None else f"[{','.join(setup)}]"
    launcher = _launcher(f"hydra.sweep.dir={tmp_path}/sweep", f"hydra.launcher.setup={setup_override}",
                         "hydra.launcher.max_num_timeout=3")  # fmt: skip
    failed, done = launcher.launch([POINT, ["objective=gspo"]], initial_job_idx=0)
    assert seen["params"]["slurm_setup"] == [KILL_BAD_EXIT, *(setup or [])] and seen["cluster"] == "slurm"
    assert seen["init"] == {"slurm_max_num_timeout": 3} and seen["folder"].endswith("/.submitit/%j")
    assert seen["params"]["tasks_per_node"] == launcher.params["tasks_per_node"]  # the shape, unprefixed
    assert seen["fn"] is launcher and seen["columns"][0] == (POINT, ["objective=gspo"])
    assert f"{EADDRINUSE} (SLURM job 71_0, rank 0;" in _failure(failed) and done.return_value == {"global_step": 4}
    assert (tmp_path / "sweep").is_dir()


def test_every_jobs_script_exports_the_line_before_srun(tmp_path):
    """submitit's own sbatch script, from the launcher's setup lines: the export comes before the srun line."""
    executor = submitit.AutoExecutor(folder=str(tmp_path), cluster="slurm")
    executor.update_parameters(slurm_setup=_launcher().params["setup"])
    script = submitit.slurm.slurm._make_sbatch_string(command="python -m x", folder=tmp_path,
                                                      **executor._executor.parameters)  # fmt: skip
    assert script.index(KILL_BAD_EXIT) < script.index("\nsrun ")


def test_an_optuna_trials_job_ends_its_step_when_a_task_fails(tmp_path):
    from sspo_exp.sweeps.trial_jobs import launcher_executor

    executor = launcher_executor("submitit_slurm", [], tmp_path / "%j")
    script = submitit.slurm.slurm._make_sbatch_string(command="python -m x", folder=tmp_path,
                                                      **executor._executor.parameters)  # fmt: skip
    assert script.index(KILL_BAD_EXIT) < script.index("\nsrun ")
