"""``sspo-exp prefetch`` and the offline compute-node check (``sspo_exp.train.hub_cache``), with no network.

The Hub here is ``tests/hub_fixture.py``: a tiny HTTP server on 127.0.0.1 serving fixture repos in the Hub's API
layout, with ``HF_ENDPOINT`` pointing at it. So the REAL ``huggingface_hub.snapshot_download`` and the REAL
``datasets.load_dataset`` download and prepare the files (nothing is copied into the cache by hand), and the
offline side is the REAL offline loading of ``transformers`` and ``datasets`` with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_fixture import HubFixture

from sspo_exp.data import benchmark_hub_splits, dataset_hub_splits
from sspo_exp.data.loaders import SPECS, HubSplit, _snake
from sspo_exp.models import hub_id

REPO = Path(__file__).resolve().parents[1]
MODEL = "fixture-org/tiny-llm"
#: a small run that reads a Hub model, GSM8K train (rows + held-out carve) and GSM8K test (its benchmark)
POINT = ["model=local", f"model.path={MODEL}", "model.name=fixture", "dataset=gsm8k", "dataset.heldout_size=1",
         "final_eval.benchmarks=[gsm8k]"]  # fmt: skip


def _env(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    return {**env, "HF_HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", **more}  # fmt: skip


def _cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sspo_exp.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """A Hub model repo (a tiny Llama saved by transformers, in safetensors, plus a .bin copy prefetch must skip) and
    GSM8K's Hub layout (README configs, ``main/{train,test}-*.parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sspo_exp.models import tiny

    root = tmp_path_factory.mktemp("hub")
    tok = tiny.build_tokenizer()
    arch = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 2, "max_position_embeddings": 64}  # fmt: skip
    model_dir = tiny.save(tiny.build_model(arch, tok, seed=0), tok, root / "model")
    (model_dir / "pytorch_model.bin").write_bytes(b"a duplicate weight format prefetch must not fetch")
    gsm = root / "gsm8k"
    (gsm / "main").mkdir(parents=True)
    for split, n in (("train", 6), ("test", 3)):
        rows = {"question": [f"{split} q{i}" for i in range(n)], "answer": [f"work #### {i}" for i in range(n)]}
        pq.write_table(pa.table(rows), gsm / "main" / f"{split}-00000-of-00001.parquet")
    (gsm / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: "
                                   "main/train-*\n  - split: test\n    path: main/test-*\n---\n")
    return {("model", MODEL): model_dir, ("dataset", "openai/gsm8k"): gsm}


@pytest.fixture(scope="module")
def prefetched(repos, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, list[str]]:
    """``sspo-exp prefetch POINT`` against the fixture Hub, into an empty HF_HOME."""
    home = tmp_path_factory.mktemp("hf_home")
    with HubFixture(repos) as hub:
        done = _cli(["prefetch", *POINT], _env(home, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0"))
    return home, done, hub.requests


def test_prefetch_fetches_model_and_dataset_splits_through_the_hub_api(prefetched):
    home, done, requests = prefetched
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"model    {MODEL}" in out and str(home / "hub" / "models--fixture-org--tiny-llm" / "snapshots") in out
    assert "openai/gsm8k (main) split train" in out and "(6 rows)" in out
    assert "openai/gsm8k (main) split test" in out and "(3 rows)" in out
    assert "all cached" in out
    # through the Hub's HTTP API, one weight format only (safetensors; the .bin duplicate is skipped)
    assert any(r.startswith("GET /fixture-org/tiny-llm/resolve/") and r.endswith("model.safetensors") for r in requests)
    assert not any(r.endswith("pytorch_model.bin") for r in requests)
    assert any(r.startswith("GET /datasets/openai/gsm8k/resolve/") and r.endswith(".parquet") for r in requests)


def test_offline_node_loads_what_prefetch_fetched(prefetched):
    """With HF_HUB_OFFLINE=1 and no server: the training check passes and the real loaders read the cache."""
    home, done, _ = prefetched
    assert done.returncode == 0, done.stderr[-3000:]
    code = f"""
from hydra import compose, initialize_config_dir
from sspo_exp import CONF_DIR
from sspo_exp.train.config import check_local_paths
from sspo_exp.data import load_dataset_rows, load_benchmark
from sspo_exp.models import load_model, load_tokenizer
with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
    cfg = compose("train", overrides={POINT!r})
check_local_paths(cfg)
rows = load_dataset_rows(cfg.dataset, "train")
bench = load_benchmark("gsm8k")
model, tok = load_model("{MODEL}"), load_tokenizer("{MODEL}")
print("OK", len(rows), len(bench), type(model).__name__, tok.padding_side)
"""
    env = _env(home, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens: any request fails
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK 5 3 LlamaForCausalLM left" in out.stdout  # 6 train rows minus the 1 held out; 3 test rows
    dry = _cli(["prefetch", *POINT, "--dry-run"], env)
    assert dry.returncode == 0 and dry.stdout.count(" cached") == 3 and "missing" not in dry.stdout, dry.stdout


def test_offline_node_names_a_missing_dataset(prefetched, tmp_path):
    """The model cached but GSM8K's prepared copy gone: one line naming that split and the prefetch command."""
    import shutil

    home, done, _ = prefetched
    assert done.returncode == 0
    partial = tmp_path / "home"
    shutil.copytree(home / "hub", partial / "hub", symlinks=True)
    code = ("from sspo_exp.train.hub_cache import hub_needs, missing\nfrom hydra import compose, initialize_config_dir\n"
            "from sspo_exp import CONF_DIR\nwith initialize_config_dir(str(CONF_DIR), version_base='1.3'):\n"
            f"    cfg = compose('train', overrides={POINT!r})\nprint(missing(hub_needs(cfg)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=_env(partial, HF_HUB_OFFLINE="1"), capture_output=True,
                         text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "openai/gsm8k (main) split train not in the datasets cache" in out.stdout
    assert MODEL not in out.stdout  # the model's snapshot was copied: not reported


def test_offline_compute_node_without_the_model_is_one_line_exit_2(tmp_path):
    """The issue's case: `sspo-exp train experiment=table1` on an offline node with an empty cache."""
    start = time.monotonic()
    done = _cli(["train", "experiment=table1"], _env(tmp_path, HF_HUB_OFFLINE="1"), timeout=60)
    seconds = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "model.path=Qwen/Qwen2.5-7B-Instruct" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert "`sspo-exp prefetch experiment=table1`" in lines[0]
    assert seconds < 3.0, f"{seconds:.1f} s"


def test_offline_eval_of_a_missing_model_is_one_line_naming_a_prefetch_line_that_fetches_it(tmp_path):
    """`sspo-exp eval` on an offline node with an empty cache: training's check (hub_cache.refuse_missing), one line,
    exit 2; the prefetch line it names reads exactly what the evaluation reads."""
    from sspo_exp.sweeps.prefetch import needs_of
    from sspo_exp.train.hub_cache import eval_needs

    start = time.monotonic()
    done = _cli(["eval", "eval.model=Qwen/Qwen2.5-7B-Instruct", f"output_root={tmp_path}"],
                _env(tmp_path, HF_HUB_OFFLINE="1"), timeout=60)  # fmt: skip
    seconds = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "eval.model=Qwen/Qwen2.5-7B-Instruct: model not in the HF cache" in lines[0] and "(and 4 more)" in lines[0]
    command = ("sspo-exp prefetch model=local model.path=Qwen/Qwen2.5-7B-Instruct model.name=qwen2.5-7b-instruct "
               "final_eval.benchmarks=[gsm8k,math500,aime25]")
    assert f"`{command}`" in lines[0]
    assert seconds < 30.0, f"{seconds:.1f} s"  # no model load (1.5-7 s wall, by the machine's load)
    fetched = needs_of([command.split()[2:]])
    wanted = eval_needs("Qwen/Qwen2.5-7B-Instruct", ["gsm8k", "math500", "aime25"], {})
    assert {r for _, r in fetched.models} == {r for _, r in wanted.models} == {"Qwen/Qwen2.5-7B-Instruct"}
    assert {s for _, s in fetched.datasets} == {s for _, s in wanted.datasets} and len(wanted.datasets) == 4


def test_offline_eval_of_a_cached_model_runs(prefetched, tmp_path):
    """What prefetch fetched passes the evaluation's offline check and is scored (no server listening)."""
    home, done, _ = prefetched
    assert done.returncode == 0
    env = _env(home, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    out = _cli(["eval", f"eval.model={MODEL}", "eval.benchmarks=[gsm8k]", "eval.max_new_tokens=2", "eval.progress=false",
                "eval.wandb.log=false", f"output_root={tmp_path}"], env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"gsm8k +pass@1 = +[\d.]+% +\(\d/3, 0 failed\)", out.stdout), out.stdout


def test_prefetch_refuses_offline_and_bad_points_in_one_line(tmp_path):
    offline = _cli(["prefetch", *POINT], _env(tmp_path, HF_HUB_OFFLINE="1"), timeout=60)
    assert offline.returncode == 2 and offline.stderr.count("\n") == 1 and "HF_HUB_OFFLINE=1" in offline.stderr
    bad = _cli(["prefetch", "sweeps/table1.yaml", "trainer.mu=0"], _env(tmp_path, HF_HUB_OFFLINE="0"), timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "trainer.mu=0" in bad.stderr, bad.stderr


def test_what_a_config_reads_from_the_hub_is_the_loaders_answer():
    table1 = {"name": "gsm8k_deepmath", "components": {
        "gsm8k": {"name": "gsm8k", "path": None, "hub_id": "openai/gsm8k", "hub_config": "main", "heldout_split": None},
        "deepmath": {"name": "deepmath", "path": None, "hub_id": "zwhe99/DeepMath-103K", "heldout_split": None}}}
    assert dataset_hub_splits(table1, "train") == [HubSplit("openai/gsm8k", "main", "train"),
                                                   HubSplit("zwhe99/DeepMath-103K", None, "train")]
    assert dataset_hub_splits(table1, "heldout") == [HubSplit("openai/gsm8k", "main", "train"),  # carved from train
                                                     HubSplit("zwhe99/DeepMath-103K", None, "train")]
    assert dataset_hub_splits({"name": "gsm8k", "path": "/data/gsm8k"}, "train") == []  # local: nothing to fetch
    assert dataset_hub_splits({"name": "arithmetic"}, "train") == []  # generated
    assert dataset_hub_splits({"name": "codeact", "path": None}, "train") == [HubSplit("xingyaoww/code-act", None,
                                                                                       "codeact")]
    assert benchmark_hub_splits("aime25") == [HubSplit("opencompass/AIME2025", "AIME2025-I", "test"),
                                              HubSplit("opencompass/AIME2025", "AIME2025-II", "test")]
    assert benchmark_hub_splits("aime24") == [HubSplit("HuggingFaceH4/aime_2024", None, "train")]
    assert benchmark_hub_splits("math500", "/data/m.jsonl") == []
    assert [hub_id(s) for s in ("Qwen/Qwen3-8B", "gpt2", "/models/m", "./m", "a/b/c", None)] == \
        ["Qwen/Qwen3-8B", "gpt2", None, None, None, None]


def test_cache_folder_names_match_datasets():
    """The offline check finds ``datasets``' cache folders by its own naming (copied to avoid a 2 s import)."""
    from datasets.naming import camelcase_to_snakecase

    names = [s.hub_id.split("/")[-1] for s in SPECS.values()] + ["code-act", "MyDataSet", "ABCTest", "aime_2024"]
    assert [_snake(n) for n in names] == [camelcase_to_snakecase(n) for n in names]
