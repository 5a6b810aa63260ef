"""In-training evaluation under sharding: greedy generation with an FSDP2-sharded policy on 2 CPU processes (gloo).

accelerate 1.15 does not run FSDP on CPU processes (its FSDP plugin is only taken for accelerator device types), so
the sharded model is built here as accelerate builds it on GPUs: ``fully_shard`` per decoder layer and at the root.
What this checks is what in-training evaluation relies on (``sspo_exp/train/sharded.py``): every rank generates
with the sharded weights, the collectives stay in step, and the completions equal the unsharded model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_model_helpers import build_local_qwen
from waiting import CEILING

pytestmark = pytest.mark.slow

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def test_fsdp2_sharded_greedy_generation_equals_the_full_model(tmp_path):
    from sspo_exp.data import load_benchmark

    model_dir = build_local_qwen(tmp_path / "qwen")
    rows = load_benchmark("gsm8k", FIX / "gsm8k") + load_benchmark("math500", FIX / "math500")
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    worker = Path(__file__).with_name("sharded_eval_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(29700 + os.getpid() % 200), str(worker), str(model_dir), str(tmp_path / "rows.json"), str(tmp_path)]
    for attempt in range(2):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CEILING)
        # seen once in a clean CI run: a rank aborted by the C++ runtime ("terminate called without an active
        # exception", exit -6) inside gloo; not reproduced since. One retry of that crash only, said aloud.
        if out.returncode == 0 or "terminate called without an active exception" not in out.stderr or attempt:
            break
        print("a rank aborted inside the C++ runtime (gloo); retrying once:\n" + out.stderr[-1500:])
    assert out.returncode == 0, out.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0]["full"] == ranks[1]["full"]
    for r in ranks:
        assert r["sharded"] == r["full"], r  # same greedy completions from the sharded weights, on every rank
        assert all(local[0] < full[0] for local, full in r["shards"])  # each rank held a slice of every weight
