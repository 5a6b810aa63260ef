"""Storage URLs (sspo_exp/sweeps/storage.py): the PostgreSQL driver is chosen before anything heavy is imported, a
missing one is a one-line error with exit 2, and a password in a URL is redacted from every message."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from sspo_exp.sweeps import storage

SECRET = "s3cr3t-Pw_42"


@pytest.mark.parametrize(
    "text, shown",
    [
        (f"postgresql://sspo:{SECRET}@127.0.0.1:54329/db", "postgresql://sspo:***@127.0.0.1:54329/db"),
        (f"postgresql+psycopg://u:{SECRET}@h/db?sslmode=require", "postgresql+psycopg://u:***@h/db?sslmode=require"),
        (f"error in --storage postgres://u:{SECRET}@h/db: refused", "error in --storage postgres://u:***@h/db: refused"),
        (f"postgresql://u@h/db?password={SECRET}&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),  # no password: unchanged
        ("sqlite:////tmp/a:b/study.db", "sqlite:////tmp/a:b/study.db"),
        ("runs/optuna/x.journal", "runs/optuna/x.journal"),
    ],
)
def test_redact_hides_url_passwords_only(text, shown):
    assert storage.redact(text) == shown


def test_postgres_urls_get_the_installed_driver(monkeypatch):
    installed = {"psycopg"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else None)
    assert storage.sqlalchemy_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert storage.sqlalchemy_url("postgres://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert storage.sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(storage.StorageError, match=r"'psycopg2' is not installed; install it with: pip install 'sspo-exp\[postgres\]'"):
        storage.sqlalchemy_url(f"postgresql+psycopg2://u:{SECRET}@h/db")
    installed = {"psycopg2"}  # psycopg2 alone serves plain postgresql:// URLs
    assert storage.sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    with pytest.raises(storage.StorageError, match="driver 'asyncpg' is not supported"):
        storage.sqlalchemy_url("postgresql+asyncpg://u@h/db")
    with pytest.raises(storage.StorageError, match=r"unknown URL scheme 'mysql'.*sqlite:///FILE or postgresql://"):
        storage.sqlalchemy_url("mysql://u@h/db")


PROBE = """
import sys
sys.modules["psycopg"] = sys.modules["psycopg2"] = None   # neither driver importable (find_spec -> None)
from sspo_exp.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("optuna", "sqlalchemy", "torch", "transformers", "wandb") if m in sys.modules)
print("heavy modules:", heavy)
sys.exit(code)
"""


@pytest.mark.parametrize("command", [["create", "optuna_sspo"], ["worker", "--study", "x"], ["show", "--study", "x"]])
def test_a_missing_driver_is_exit_2_with_the_install_hint_and_no_traceback(command):
    url = f"postgresql://sspo:{SECRET}@127.0.0.1:1/db"
    out = subprocess.run([sys.executable, "-c", PROBE, "optuna", *command, "--storage", url], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "pip install 'sspo-exp[postgres]'" in out.stderr and "Traceback" not in out.stderr
    assert "heavy modules: []" in out.stdout  # decided before optuna / SQLAlchemy / torch were imported
    assert SECRET not in out.stdout + out.stderr and "sspo:***@127.0.0.1" in out.stderr


def test_an_unreachable_server_is_exit_2_naming_the_redacted_url(tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql://sspo:{SECRET}@127.0.0.1:1/db?connect_timeout=5"  # nothing listens on port 1
    out = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "optuna", "show", "--study", "x", "--storage", url],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "cannot open" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert SECRET not in out.stdout + out.stderr


def test_a_trial_whose_run_another_worker_trains_waits_and_takes_its_result(tmp_path, monkeypatch):
    """Two workers that sample one point would train one run directory twice; the run's lease refuses the second
    (sspo_exp.rundir), and its trial waits for the first and reports the same summary."""
    import json
    import threading
    import time

    from omegaconf import OmegaConf

    from sspo_exp.rundir import Lease, RunDir
    from sspo_exp.sweeps import optuna_cli

    cfg = OmegaConf.create({"output_root": str(tmp_path)})
    monkeypatch.setattr(optuna_cli, "run_id", lambda c: "grpo-s0-x")
    monkeypatch.setattr(optuna_cli, "BUSY_POLL_SECONDS", 0.05)
    run = RunDir(tmp_path, "grpo-s0-x")
    run.path.mkdir()
    run.lease_file.write_text(json.dumps({"host": "other-node", "pid": 1, "job_id": None, "renewed": time.time()}))
    calls = []

    def train_fn(c, callbacks=()):
        calls.append(1)
        with Lease(run):  # the other worker's lease is live: this raises RunBusy
            raise AssertionError("trained a run another worker holds")

    def other_worker_finishes():
        time.sleep(0.3)
        run.write_summary({"train_reward_last": 0.5})
        run.lease_file.unlink()

    threading.Thread(target=other_worker_finishes).start()
    assert optuna_cli.train_or_wait(train_fn, cfg) == {"train_reward_last": 0.5} and calls == [1]
