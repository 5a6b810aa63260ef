"""Which stored runs were produced under the CPU study's pre-registered protocol (reports/cpu_study/protocol.md).

The protocol's commit is the last commit that changed ``protocol.md`` (``git log -1 -- protocol.md``): editing the
protocol after runs were made re-dates it, so those runs no longer count as produced under it. A run counts as
produced under the protocol when its recorded ``code.commit`` has the protocol's commit as an ancestor (it was
trained by code that already held the protocol) AND its recorded ``code.dirty`` is False (the code was that commit).
A commit this repository does not know, a missing commit, or a missing or true dirty flag does not count.

``publish`` publishes a *confirmatory* study only when every finished run counts; otherwise it refuses, unless asked
for an *exploratory* publication, which labels every table "exploratory (pre-protocol)" and records no protocol
commit (that label is the same on any clone, so the published files regenerate byte for byte).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

EXPLORATORY = "exploratory (pre-protocol)"
CONFIRMATORY = "confirmatory"


class PreProtocol(ValueError):
    """Some runs were not produced under the committed protocol and the study was not published as exploratory."""


@dataclass(frozen=True)
class Protocol:
    path: Path
    sha256: str
    commit: str | None  #: the last commit that changed the protocol; None when it is not committed (or no git)


def read_protocol(path: Path) -> Protocol:
    """The protocol file's content hash and its commit (``git log -1 --format=%H -- <path>`` in its repository)."""
    if not path.is_file():
        raise PreProtocol(f"no protocol at {path}: the study's tests and comparisons must be pre-registered there")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out = _git(path.parent, "log", "-1", "--format=%H", "--", path.name)
    return Protocol(path, digest, out or None)


def is_ancestor(ancestor: str, commit: str, repo: Path) -> bool:
    """``ancestor`` is ``commit`` or one of its ancestors in the git repository at ``repo`` (False when git or
    either commit is unknown there)."""
    return _git(repo, "merge-base", "--is-ancestor", ancestor, commit, check_only=True) is not None


def under_protocol(runs: pd.DataFrame, protocol: Protocol) -> pd.Series:
    """Per run (same index): True when it was produced under ``protocol`` (module docstring)."""
    if protocol.commit is None:
        return pd.Series(False, index=runs.index)
    commits = runs["code.commit"] if "code.commit" in runs else pd.Series(None, index=runs.index)
    dirty = runs["code.dirty"] if "code.dirty" in runs else pd.Series(None, index=runs.index)
    known: dict[str, bool] = {}
    out = []
    for c, d in zip(commits, dirty):
        clean = str(d).strip().lower() in ("false", "0", "0.0")  # CSV round trip: False, "False", 0.0
        if not isinstance(c, str) or not c or not clean:
            out.append(False)
            continue
        if c not in known:
            known[c] = is_ancestor(protocol.commit, c, protocol.path.parent)
        out.append(known[c])
    return pd.Series(out, index=runs.index, dtype=bool)


def study_status(runs: pd.DataFrame, protocol_path: Path, exploratory: bool) -> dict:
    """The published study's protocol record; raises :class:`PreProtocol` (one line naming the counts and the way
    out) when a finished run was not produced under the protocol and ``exploratory`` is False."""
    if exploratory:
        sha = hashlib.sha256(protocol_path.read_bytes()).hexdigest() if protocol_path.is_file() else None
        return {"status": EXPLORATORY, "protocol": protocol_path.name, "protocol_sha256": sha}
    protocol = read_protocol(protocol_path)
    done = runs[runs["state"] == "finished"]
    ok = under_protocol(done, protocol)
    if protocol.commit is None or not ok.all() or not len(done):
        where = f"commit {protocol.commit[:12]}" if protocol.commit else "not committed"
        raise PreProtocol(
            f"{int((~ok).sum())} of {len(done)} finished runs were not produced under {protocol_path} ({where}): "
            "their code.commit does not contain it, or code.dirty is not False; publish them with --exploratory "
            "(labelled pre-protocol), or rerun the study")
    return {"status": CONFIRMATORY, "protocol": protocol_path.name, "protocol_sha256": protocol.sha256,
            "protocol_commit": protocol.commit, "runs_under_protocol": int(ok.sum())}


def banner(status: dict) -> str:
    """The line above every published table."""
    if status["status"] == EXPLORATORY:
        return (f"> **Exploratory (pre-protocol).** These runs were not produced under the pre-registered "
                f"{status['protocol']}; read every verdict as exploratory, not as the protocol's test.")
    return (f"> **Confirmatory**: every run was produced under {status['protocol']} "
            f"(commit {status['protocol_commit'][:12]}).")


def _git(repo: Path, *args: str, check_only: bool = False) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return "" if check_only else r.stdout.strip()
