"""The report reads offline runs of older W&B releases as well as the installed one, and falls back to W&B's own
reader for a format it does not know.

``tests/fixtures/wandb_runs/<version>/`` holds REAL offline runs written by that wandb release (the same
``tests/report_helpers.py`` runs, see the README there); ``wandb_root`` (conftest.py) has them written now by the
installed wandb. The same runs must give the same tables and histories whichever release wrote them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import report_helpers as H
from waiting import CEILING
from sspo_exp.report import wandb_offline
from sspo_exp.report.cli import main
from sspo_exp.report.sources import load
from sspo_exp.report.tables import SPECS, build_table
from sspo_exp.report.wandb_offline import find_run_dirs, read_segment
from sspo_exp import keys

FIXTURES = Path(__file__).parent / "fixtures" / "wandb_runs"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
WANDB_CLI = H.wandb_leet_cli()
#: killed launches: these older releases had not written their rows to disk when the process was SIGKILLed
KILLED_RUNS = {"sspo-expsig-s2", "sspo-atanlog-s2"}


def test_fixtures_are_the_releases_they_are_named_after():
    assert VERSIONS and set(VERSIONS) <= set(wandb_offline.TESTED_WANDB)
    for version in VERSIONS:
        writers = {read_segment(d).writer for d in find_run_dirs([FIXTURES / version])}
        assert writers - {""} == {version}, (version, writers)  # "": a killed launch with no header on disk


@pytest.mark.parametrize("version", VERSIONS)
def test_older_release_reads_like_wandbs_own_record_class(version):
    for d in find_run_dirs([FIXTURES / version]):
        fast, plain, frame = read_segment(d), read_segment(d, fast=False), read_segment(d, frame=True)
        assert (fast.history, fast.summary, fast.config, fast.exit_code) == \
               (plain.history, plain.summary, plain.config, plain.exit_code), d
        assert len(frame.history) == len(fast.history)
        for i, row in enumerate(fast.history):  # the column-wise frame holds the same numbers
            for k, v in row.items():
                assert frame.history.iloc[i][k] == pytest.approx(float(v)), (d, i, k)


@pytest.mark.skipif(WANDB_CLI is None, reason="no `wandb leet inspect` (wandb < 0.31)")
@pytest.mark.parametrize("version", VERSIONS)
def test_older_release_matches_wandb_leet_inspect(version):
    """The installed W&B's own reader sees the same history rows, config and summary in the older files."""
    for run_id in ("grpo-eps02-s1", "base-s0", "sspo-atanlog-s2"):
        for d in sorted(FIXTURES.glob(f"{version}/offline-run-*-{run_id}")):
            seg = wandb_offline._from_leet(next(d.glob("run-*.wandb")), frame=False)
            ours = read_segment(d)
            assert (ours.history, ours.config, ours.exit_code) == (seg.history, seg.config, seg.exit_code), d
            assert {k: v for k, v in ours.summary.items() if not k.startswith("_")} == \
                   {k: v for k, v in seg.summary.items() if not k.startswith("_")}


def _cells(table):
    return {k: (None if math.isnan(c.mean) else round(c.mean, 9), None if math.isnan(c.std) else round(c.std, 9),
                c.n, c.config) for k, c in table.cells.items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_older_release_gives_the_same_tables_and_curves_as_the_installed_one(version, wandb_root):
    assert_reads_like_the_installed_release(FIXTURES / version, wandb_root)


def assert_reads_like_the_installed_release(root: Path, wandb_root: Path) -> None:
    """The runs of ``tests/report_helpers.py`` under ``root`` (written by another wandb release) give the same
    run states, tables and curves as the same runs written by the installed release (``wandb_root``)."""
    old_runs, old_hist = load(offline=[root], idle_seconds=0, workers=2)
    new_runs, new_hist = load(offline=[wandb_root], idle_seconds=0, workers=1)
    assert sorted(old_runs["run_id"]) == sorted(new_runs["run_id"])
    states = lambda r: dict(zip(r["run_id"], r["state"]))  # noqa: E731
    assert states(old_runs) == states(new_runs)
    # the killed run: an older release may have lost even its config; it is listed as killed either way
    keep_old, keep_new = old_runs[old_runs["run_id"] != "sspo-expsig-s2"], new_runs[new_runs["run_id"] != "sspo-expsig-s2"]
    keep_old.attrs, keep_new.attrs = old_runs.attrs, new_runs.attrs
    for spec in ("1", "mini"):
        # the fixture files predate evaluation profiles (unknown profile): allowed, as the readers are compared here
        a, b = (build_table(r, SPECS[spec], allow_mixed_profiles=True) for r in (keep_old, keep_new))
        assert _cells(a) == _cells(b), (root, spec)
        assert sorted(a.excluded["run_id"]) == sorted(b.excluded["run_id"])
    for run_id in set(old_runs["run_id"]) - KILLED_RUNS - {"base-s0"}:
        h_old = old_hist[old_hist["run_id"] == run_id].set_index("step")
        h_new = new_hist[new_hist["run_id"] == run_id].set_index("step")
        assert list(h_old.index) == list(range(H.STEPS)), run_id
        for col in ("train/reward", "train/entropy", "train/objective/seq_weight_var", keys.HELDOUT):  # old spelling read as new
            assert np.allclose(h_old[col], h_new[col], equal_nan=True), (run_id, col)


ROOT = Path(__file__).resolve().parents[1]
#: A second wandb release in its own small venv (``bash .ci/wandb_versions.sh``; CI makes it): its python.
OTHER_PYTHON = Path(os.environ.get("SSPO_TEST_WANDB_OTHER_PYTHON", ROOT / ".venv-wandb-old" / "bin" / "python"))


def _other_release() -> str | None:
    if not OTHER_PYTHON.exists():
        return None
    out = subprocess.run([str(OTHER_PYTHON), "-c", "import wandb; print(wandb.__version__)"], capture_output=True,
                         text=True, timeout=CEILING)  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else None


@pytest.fixture(scope="module")
def other_release_root(tmp_path_factory) -> tuple[str, Path]:
    """REAL offline runs written NOW by the second wandb release (not stored files): ``(its version, root)``."""
    version = _other_release()
    if version is None:
        pytest.skip(f"no second wandb release at {OTHER_PYTHON}: `bash .ci/wandb_versions.sh` makes it (CI does)")
    root = tmp_path_factory.mktemp(f"wandb_{version}")
    env = {**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    env.pop("WANDB_SERVICE", None)
    subprocess.run([str(OTHER_PYTHON), str(ROOT / "tests" / "report_helpers.py"), str(root)], check=True, env=env,
                   timeout=CEILING)  # fmt: skip
    return version, root


def test_a_second_release_writes_runs_now_that_the_report_reads_like_the_installed_ones(other_release_root, wandb_root):
    """Cross-version in CI: another wandb release than the installed one writes the runs (in .venv-wandb-old), the
    report here reads them, and tables, states and curves equal those of the installed release's runs."""
    import wandb

    version, root = other_release_root
    assert version != wandb.__version__, "the second environment must hold another wandb release"
    writers = {read_segment(d).writer for d in find_run_dirs([root])}
    assert writers - {""} == {version}, writers  # the files really are that release's
    assert_reads_like_the_installed_release(root, wandb_root)


def test_unknown_format_is_read_with_wandbs_own_reader(wandb_root, monkeypatch, capsys):
    """A file header this reader does not know: W&B's own reader (here: the installed wandb's) reads it, and the
    user is told so. Simulated by making the reader expect another header version than the real files carry."""
    (d,) = sorted(wandb_root.glob("wandb/offline-run-*-grpo-eps02-s1"))
    expected = read_segment(d)
    monkeypatch.setattr(wandb_offline, "FILE_VERSION", wandb_offline.FILE_VERSION + 7)
    seg = read_segment(d)
    err = capsys.readouterr().err
    assert "not understood by sspo-exp's reader" in err and "version 7" in err and "own reader" in err
    assert seg.reader != "sspo-exp"
    assert (seg.history, seg.summary, seg.config, seg.exit_code, seg.state, seg.run_id, seg.group) == \
           (expected.history, expected.summary, expected.config, expected.exit_code, expected.state,
            expected.run_id, expected.group)


def test_unreadable_file_is_a_clear_error_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "wandb" / "offline-run-20260101_000000-junk"
    bad.mkdir(parents=True)
    (bad / "run-junk.wandb").write_bytes(b"NOTWANDB" + bytes(64))
    with pytest.raises(ValueError, match=r"run-junk\.wandb: neither sspo-exp's reader .* can read this file"):
        read_segment(bad)
    capsys.readouterr()
    assert main(["--offline", str(tmp_path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "can read this file" in err and "Traceback" not in err


def test_workers_must_be_positive(wandb_root, capsys):
    assert main(["--offline", str(wandb_root), "--workers", "0"]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err


def test_pinned_range_covers_every_tested_release():
    """pyproject's wandb range admits the releases tested here and no older one."""
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [Requirement(d).specifier for d in deps if Requirement(d).name == "wandb"]
    assert all(spec.contains(v) for v in wandb_offline.TESTED_WANDB), spec
    oldest = min(wandb_offline.TESTED_WANDB, key=lambda v: tuple(map(int, v.split("."))))
    assert not spec.contains(f"{oldest.split('.')[0]}.{int(oldest.split('.')[1]) - 1}.0"), spec
