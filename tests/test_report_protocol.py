"""The CPU study's pre-registration and regeneration (sspo_exp/report/protocol.py, reports/cpu_study/run.sh):
runs count as produced under the protocol only when their commit contains it and their tree was clean; publish
refuses other data unless labelled exploratory; collect never replaces stored data from a partial runs folder;
run.sh stops on a failed sweep; the publish-only path rebuilds every table and figure from the committed data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sspo_exp import keys
from sspo_exp.report import cpu_study as cs
from sspo_exp.report import protocol as pr

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "reports" / "cpu_study"
V1 = STUDY / "v1"  # the first version (exploratory): its stored data and published files


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def _commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    _git(repo, "add", name)
    _git(repo, "commit", "-qm", name)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def repo(tmp_path):
    """A repository with a commit before the protocol, the protocol's commit, and a commit after it."""
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    before = _commit(r, "code.py", "1")
    proto = _commit(r, "protocol.md", "the plan")
    after = _commit(r, "code.py", "2")
    return r, before, proto, after


def _runs(commits_dirty):
    return pd.DataFrame([{"run_id": f"r{i}", "state": "finished", "code.commit": c, "code.dirty": d}
                         for i, (c, d) in enumerate(commits_dirty)])  # fmt: skip


def test_a_run_counts_only_with_the_protocol_in_its_history_and_a_clean_tree(repo):
    r, before, proto, after = repo
    p = pr.read_protocol(r / "protocol.md")
    assert p.commit == proto
    runs = _runs([(after, False), (proto, "False"), (before, False), (after, True), (after, None), ("f" * 40, False),
                  (None, False)])  # fmt: skip
    assert pr.under_protocol(runs, p).tolist() == [True, True, False, False, False, False, False]


def test_publish_status_refuses_pre_protocol_data_unless_exploratory_and_an_edit_re_dates_the_protocol(repo):
    r, before, proto, after = repo
    good = _runs([(after, False)] * 3)
    status = pr.study_status(good, r / "protocol.md", exploratory=False)
    assert status["status"] == "confirmatory" and status["protocol_commit"] == proto
    assert status["runs_under_protocol"] == 3
    mixed = _runs([(after, False), (before, False)])
    with pytest.raises(pr.PreProtocol, match=r"1 of 2 finished runs .*--exploratory"):
        pr.study_status(mixed, r / "protocol.md", exploratory=False)
    ex = pr.study_status(mixed, r / "protocol.md", exploratory=True)
    assert ex["status"] == pr.EXPLORATORY and "protocol_commit" not in ex
    assert pr.banner(ex).startswith("> **Exploratory (pre-protocol).**")
    _commit(r, "protocol.md", "the plan, changed after the runs")
    with pytest.raises(pr.PreProtocol, match="3 of 3"):
        pr.study_status(good, r / "protocol.md", exploratory=False)


def test_an_uncommitted_protocol_makes_nothing_confirmatory(tmp_path):
    (tmp_path / "protocol.md").write_text("draft")
    with pytest.raises(pr.PreProtocol, match="not committed"):
        pr.study_status(_runs([("a" * 40, False)]), tmp_path / "protocol.md", exploratory=False)
    with pytest.raises(pr.PreProtocol, match="no protocol"):
        pr.study_status(_runs([("a" * 40, False)]), tmp_path / "missing.md", exploratory=False)


def _frames(runs_csv: Path, n_runs: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.read_csv(runs_csv)
    runs = runs if n_runs is None else runs.iloc[:n_runs]
    return runs.reset_index(drop=True), pd.DataFrame({"run_id": runs["run_id"], "step": 1})


def test_collect_never_replaces_stored_data_from_a_partial_runs_folder(tmp_path, monkeypatch):
    from sspo_exp.report import sources

    data = tmp_path / "data"
    monkeypatch.setattr(sources, "load", lambda offline: _frames(V1 / "data" / "runs.csv"))
    cs.collect([tmp_path / "runs"], data)
    stored = (data / "runs.csv").read_bytes()
    # the stored frame keeps what a published number's provenance needs (the committed data predates most of it)
    kept = {"code.commit", "code.dirty", "identity.setting_hash", keys.eval_key(cs.BENCHMARK, keys.profile_stat("id"))}
    assert kept <= set(pd.read_csv(data / "runs.csv").columns)
    assert kept - set(pd.read_csv(V1 / "data" / "runs.csv").columns) == kept - {"code.commit"}
    monkeypatch.setattr(sources, "load", lambda offline: _frames(V1 / "data" / "runs.csv", 100))
    with pytest.raises(cs.PartialRuns, match="70 runs finished .* not overwriting"):
        cs.collect([tmp_path / "runs"], data)
    assert (data / "runs.csv").read_bytes() == stored
    assert cs.main(["collect", str(tmp_path / "runs"), str(data)]) == 2
    cs.collect([tmp_path / "runs"], data, force=True)
    assert len(pd.read_csv(data / "runs.csv")) == 100


def test_publish_cli_exits_2_with_one_line_for_pre_protocol_data_or_an_empty_folder(tmp_path, capsys):
    assert cs.main(["publish", str(V1 / "data"), str(tmp_path / "out"), "--no-figures", "--protocol",
                    str(STUDY / "protocol.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "170 of 170 finished runs were not produced under" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    assert cs.main(["publish", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "holds no runs.csv" in capsys.readouterr().err


def _run_sh(tmp_path, *args, fake_sweep_status: int | None = None):
    env = {**os.environ, "STUDY_DATA": str(tmp_path / "data"), "STUDY_OUT": str(tmp_path / "out"),
           "STUDY_RUNS": str(tmp_path / "runs"), "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    if fake_sweep_status is not None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "sspo-exp").write_text(f"#!/bin/sh\nexit {fake_sweep_status}\n")
        (bin_dir / "sspo-exp").chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(STUDY / "run.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_run_sh_stops_on_a_failed_sweep_without_collecting_or_publishing(tmp_path):
    res = _run_sh(tmp_path, fake_sweep_status=3)
    assert res.returncode == 3, res.stderr
    assert "failed (exit 3)" in res.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["wall.tsv"]  # timed, nothing collected
    assert len((tmp_path / "data" / "wall.tsv").read_text().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_publish_only_path_rebuilds_every_table_and_figure_from_the_committed_data(tmp_path):
    """`run.sh publish --exploratory` on the committed data/ alone (what a fresh clone has): every committed table,
    claims file and provenance byte for byte, and every committed figure regenerated."""
    if not (V1 / "data" / "runs.csv").exists():
        pytest.fail("reports/cpu_study/v1/data/runs.csv is missing: the study's stored results must be committed")
    res = _run_sh(tmp_path, "publish", "--exploratory", fake_sweep_status=9)  # a sweep would fail: none may run
    (tmp_path / "data").mkdir()
    assert res.returncode != 0 and "holds no runs.csv" in res.stderr  # STUDY_DATA is empty here
    env_data = tmp_path / "data"
    for f in (V1 / "data").iterdir():
        (env_data / f.name).write_bytes(f.read_bytes())
    res = _run_sh(tmp_path, "publish", "--exploratory", fake_sweep_status=9)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    tables = [p.name for p in V1.iterdir() if p.suffix in (".md", ".tex", ".csv", ".json")
              and not p.name.startswith(("README", "protocol", "estimators"))]  # fmt: skip
    assert {"claims.md", "table_grid.md", "table_staleness.csv", "per_run.csv", "provenance.json"} <= set(tables)
    for name in tables:
        assert (out / name).read_bytes() == (V1 / name).read_bytes(), f"{name} differs from the published one"
    figures = {str(p.relative_to(V1)) for p in V1.rglob("*") if p.suffix in (".png", ".pdf")}
    assert figures and all((out / f).stat().st_size > 0 for f in figures), figures - {
        str(p.relative_to(out)) for p in out.rglob("*")}


def test_publish_is_confirmatory_and_records_the_protocol_commit_when_every_run_was_made_under_it(repo, tmp_path):
    r, before, proto, after = repo
    data = r / "data"
    data.mkdir()
    runs = pd.read_csv(V1 / "data" / "runs.csv").assign(**{"code.commit": after, "code.dirty": False})
    runs.to_csv(data / "runs.csv", index=False)
    (data / "history.csv").write_bytes((V1 / "data" / "history.csv").read_bytes())
    cs.publish(data, tmp_path / "out", figures=False, protocol=r / "protocol.md")
    record = json.loads((tmp_path / "out" / "provenance.json").read_text())["protocol"]
    assert record["status"] == "confirmatory" and record["protocol_commit"] == proto
    assert record["runs_under_protocol"] == 170
    assert (tmp_path / "out" / "claims.md").read_text().startswith(f"> **Confirmatory**: every run was produced "
                                                                   f"under protocol.md (commit {proto[:12]})")
    runs.loc[0, "code.commit"] = before
    runs.to_csv(data / "runs.csv", index=False)
    with pytest.raises(pr.PreProtocol, match="1 of 170"):
        cs.publish(data, tmp_path / "out2", figures=False, protocol=r / "protocol.md")


def _in_history(commit: str) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True).returncode == 0  # fmt: skip


def test_the_current_study_regenerates_from_its_committed_data_as_confirmatory(tmp_path):
    """The published study (reports/cpu_study/*) equals what `publish` makes of its committed data/, byte for byte,
    and is confirmatory: every run was made by a clean checkout containing the protocol's commit. Whether the
    commits are in this clone's history is decided apart from the rule under test: with them, the runs MUST count
    as made under the protocol (an edit of protocol.md after the runs, or a run from another commit, fails here);
    in a shallow clone without them the same files are compared as exploratory, banner lines and the protocol
    record aside."""
    if not (STUDY / "data" / "runs.csv").exists():
        pytest.fail("reports/cpu_study/data/runs.csv is missing: the study's stored results must be committed")
    runs = pd.read_csv(STUDY / "data" / "runs.csv", dtype={"code.commit": str})
    protocol = pr.read_protocol(STUDY / "protocol.md")
    full = protocol.commit is not None and all(_in_history(c) for c in {protocol.commit, *runs["code.commit"]})
    if full:
        assert pr.under_protocol(runs, protocol).all(), "the stored runs no longer count as made under protocol.md"
    written = cs.publish(STUDY / "data", tmp_path, figures=False, exploratory=not full, protocol=STUDY / "protocol.md")
    names = sorted(p.name for p in written)
    assert {"claims.md", "regimes.md", "regimes.csv", "collapse.csv", "provenance.json"} <= set(names)
    for name in names:
        got, want = (tmp_path / name).read_text(), (STUDY / name).read_text()
        if not full and name.endswith(".md"):
            got, want = (t.split("\n", 1)[1] for t in (got, want))  # the banner line says which status
        if not full and name == "provenance.json":
            got, want = ({k: v for k, v in json.loads(t).items() if k != "protocol"} for t in (got, want))
        assert got == want, f"{name} differs from the published one"
    assert json.loads((STUDY / "provenance.json").read_text())["protocol"]["status"] == "confirmatory"
    assert (STUDY / "claims.md").read_text().startswith("> **Confirmatory**")
