"""Dataset loaders, row schema policy, mixtures and prompts, on hand-written fixtures in each dataset's schema."""

import json
import logging
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.data import (
    BENCHMARKS,
    DataError,
    LOADERS,
    load_benchmark,
    load_dataset_rows,
    load_rows,
    rows_to_dataset,
)
from sspo_exp.data.loaders import gsm8k_answer
from sspo_exp.data.prompts import INSTRUCTION, build_prompt

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------------------- loaders
def test_gsm8k_final_answer_after_hashes_commas_stripped():
    rows = load_rows("gsm8k", "train", FIX / "gsm8k")
    assert [r["answer"] for r in rows] == ["7", "1500", "60", "15", "62"]
    assert rows[0] == {
        "id": "gsm8k-train-0",
        "question": "Mia bakes 12 muffins and sells 5 of them. How many muffins are left?",
        "answer": "7",
        "source": "gsm8k",
    }
    test = load_rows("gsm8k", "test", FIX / "gsm8k")  # the directory's *test* file, not the train file
    assert [r["answer"] for r in test] == ["5", "135", "30000", "3"]


@pytest.mark.parametrize("text, final", [("a\n#### 1,234", "1234"), ("x #### -5", "-5"), ("42", "42"), ("3,000", "3000")])
def test_gsm8k_answer_parser(text, final):
    assert gsm8k_answer(text) == final


@pytest.mark.parametrize("text", ["no final answer here", "ends with #### "])
def test_gsm8k_answer_parser_rejects(text):
    with pytest.raises(ValueError):
        gsm8k_answer(text)


def test_deepmath_final_answer():
    rows = load_rows("deepmath", "train", FIX / "deepmath" / "train.jsonl")
    assert [r["answer"] for r in rows] == ["3", "24", "1", "\\dfrac{1}{6}"]
    assert rows[0]["question"].startswith("Evaluate the limit") and rows[0]["source"] == "deepmath"


def test_dapo_question_without_dapo_instruction_answer_from_ground_truth_deduplicated():
    rows = load_rows("dapo_math", "train", FIX / "dapo_math")
    assert len(rows) == 3  # 4 rows, one repeated problem
    assert rows[0]["question"] == "Find the remainder when $7^{100}$ is divided by $5$."
    assert rows[0]["answer"] == "1" and rows[0]["id"] == "9a9b6eb4-a1cb-49d1-8c1e-62eaf2f74079"
    assert all("Answer:" not in r["question"] and "Solve the following" not in r["question"] for r in rows)


def test_math500_aime24_aime25():
    m = load_benchmark("math500", FIX / "math500")
    assert [r["answer"] for r in m][:2] == ["\\left( 3, \\frac{\\pi}{2} \\right)", "\\frac{14}{3}"]
    assert m[0]["id"] == "test/precalculus/807.json"
    a24 = load_benchmark("aime24", FIX / "aime24")
    assert [r["id"] for r in a24] == ["60", "61", "62"] and a24[1]["answer"] == "024"
    a25 = load_benchmark("aime25", FIX / "aime25")  # `question` column; no file named *test*: all files read
    assert len(a25) == 3 and {r["answer"] for r in a25} == {"25", "32", "43"}


def test_aime_accepts_question_final_answer_and_capitalised_columns(tmp_path):
    _write_jsonl(tmp_path / "a.jsonl", [{"question": "Q1", "final_answer": 5}, {"question": "Q2", "final_answer": 7}])
    assert [r["answer"] for r in load_benchmark("aime24", tmp_path / "a.jsonl")] == ["5", "7"]  # ints -> str
    _write_jsonl(tmp_path / "b.jsonl", [{"ID": "2024-I-1", "Problem": "Q", "Answer": 204}])
    assert load_benchmark("aime24", tmp_path / "b.jsonl")[0] == {
        "id": "2024-I-1", "question": "Q", "answer": "204", "source": "aime24"}


def test_parquet_file_and_directory(tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in (FIX / "math500" / "test.jsonl").read_text().splitlines()]
    pd.DataFrame(rows).to_parquet(tmp_path / "test-00000-of-00001.parquet")
    assert load_benchmark("math500", tmp_path) == load_benchmark("math500", FIX / "math500")


def test_hub_snapshot_directory_uses_the_config_subdirectory(tmp_path):
    import shutil

    for config in ("main", "socratic"):
        shutil.copytree(FIX / "gsm8k", tmp_path / config)
    (tmp_path / "socratic" / "test.jsonl").write_text(json.dumps({"question": "Q", "answer": "#### 999"}) + "\n")
    assert [r["answer"] for r in load_rows("gsm8k", "test", tmp_path)] == ["5", "135", "30000", "3"]  # main only


def test_no_network_no_path_fails_fast_and_says_how(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    t = time.perf_counter()
    with pytest.raises(DataError, match=r"dataset\.path=") as e:
        load_rows("gsm8k", "train")
    assert time.perf_counter() - t < 15
    assert "openai/gsm8k" in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)


def test_bad_path_and_split_and_name(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_rows("gsm8k", "train", tmp_path / "missing")
    with pytest.raises(DataError, match="no split 'test'.*valid: \\['train'\\]"):
        load_rows("deepmath", "test", FIX / "deepmath")
    with pytest.raises(DataError, match="unknown dataset 'gsm9k'"):
        load_rows("gsm9k", "train", FIX / "gsm8k")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_rows("gsm8k", "train", tmp_path / "x.csv")
    with pytest.raises(DataError, match="unknown benchmark 'gsm8k_deepmath'"):
        load_benchmark("gsm8k_deepmath")


# ------------------------------------------------------------------------------------ schema policy
GOOD = [{"question": f"Q{i}", "final_answer": str(i)} for i in range(40)]


def test_training_rows_with_missing_answer_or_blank_question_are_skipped_and_counted(tmp_path, caplog):
    bad = [{"question": "  ", "final_answer": "1"}, {"question": "Q", "final_answer": None}, {"question": "Q", "final_answer": ""}]
    _write_jsonl(tmp_path / "train.jsonl", GOOD + bad)
    with caplog.at_level(logging.WARNING):
        rows = load_rows("deepmath", "train", tmp_path)
    assert len(rows) == 40
    assert "skipped 3 of 43 rows" in caplog.text and "2 with bad 'answer'" in caplog.text
    assert "1 with bad 'question'" in caplog.text


def test_gsm8k_row_without_hashes_is_skipped_in_training(tmp_path):
    rows = [{"question": f"Q{i}", "answer": f"x\n#### {i}"} for i in range(12)] + [{"question": "Q", "answer": "no marker"}]
    _write_jsonl(tmp_path / "train.jsonl", rows)
    assert len(load_rows("gsm8k", "train", tmp_path)) == 12


@pytest.mark.parametrize(
    "bad, field",
    [({"problem": "", "answer": "1"}, "question"), ({"problem": "Q", "answer": None}, "answer"), ({"problem": "Q"}, "answer")],
)
def test_benchmark_rows_are_never_dropped(tmp_path, bad, field):
    _write_jsonl(tmp_path / "test.jsonl", [{"problem": "Q0", "answer": "1"}, bad])
    with pytest.raises(DataError, match=rf"row 1: field '{field}'"):
        load_benchmark("math500", tmp_path)


def test_non_string_answer_is_a_column_mapping_error(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", GOOD[:3] + [{"question": "Q", "final_answer": ["1", "2"]}])
    with pytest.raises(DataError, match=r"row 3: field 'answer' must be a string.*list"):
        load_rows("deepmath", "train", tmp_path)


def test_too_many_skipped_rows_is_an_error(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", GOOD[:5] + [{"question": "Q", "final_answer": None}] * 5)
    with pytest.raises(DataError, match="5 of 10 rows are malformed"):
        load_rows("deepmath", "train", tmp_path)


def test_duplicate_ids_are_an_error(tmp_path):
    _write_jsonl(tmp_path / "t.jsonl", [{"id": 1, "problem": "A", "answer": "1"}, {"id": 1, "problem": "B", "answer": "2"}])
    with pytest.raises(DataError, match="row 1: field 'id' = '1' duplicates row 0"):
        load_benchmark("aime24", tmp_path / "t.jsonl")


# ---------------------------------------------------------------------------------- configs, mixture
def _cfg(name, **over):
    cfg = OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
    for k, v in over.items():
        OmegaConf.update(cfg, k, v)
    return cfg


def test_every_dataset_config_loads_offline_from_fixtures():
    for name, path in [("gsm8k", "gsm8k"), ("deepmath", "deepmath"), ("dapo_math", "dapo_math")]:
        cfg = _cfg(name, path=str(FIX / path), heldout_size=1)
        train, held = load_dataset_rows(cfg, "train"), load_dataset_rows(cfg, "heldout")
        assert train and held and not {r["id"] for r in train} & {r["id"] for r in held}


def test_table1_mixture_gsm8k_plus_deepmath():
    cfg = _cfg("gsm8k_deepmath", **{"components.gsm8k.path": str(FIX / "gsm8k"),
                                     "components.deepmath.path": str(FIX / "deepmath"),
                                     "components.gsm8k.heldout_size": 1})
    train = load_dataset_rows(cfg, "train")
    assert len(train) == (5 - 1) + 4 and {r["source"] for r in train} == {"gsm8k", "deepmath"}
    assert train == load_dataset_rows(cfg, "train")  # deterministic
    cfg.seed = 1
    other = load_dataset_rows(cfg, "train")
    assert other != train and sorted(r["id"] for r in other) == sorted(r["id"] for r in train)
    held = load_dataset_rows(cfg, "heldout")
    assert [r["source"] for r in held] == ["gsm8k"]  # one GSM8K train row (see the test below)


def _components(cfg):
    return [dict(c) for c in cfg.components.values()] if cfg.get("components") else [dict(cfg)]


@pytest.mark.parametrize("name", ["gsm8k", "gsm8k_deepmath"])
def test_heldout_rows_come_from_train_never_from_the_benchmark_test_split(name):
    """Held-out accuracy selects the best configuration, so no held-out row may be a benchmark test row (GSM8K test
    is a Table 1 column); held-out rows are carved out of train and excluded from training."""
    paths = {"gsm8k": FIX / "gsm8k", "deepmath": FIX / "deepmath"}
    over = {"path": str(paths["gsm8k"]), "heldout_size": 2} if name == "gsm8k" else {
        **{f"components.{c}.path": str(p) for c, p in paths.items()}, "components.gsm8k.heldout_size": 2}
    cfg = _cfg(name, **over)
    train, held = load_dataset_rows(cfg, "train"), load_dataset_rows(cfg, "heldout")
    key = lambda r: (r["question"], r["answer"])  # noqa: E731  (ids differ across splits; compare content too)
    test = load_benchmark("gsm8k", FIX / "gsm8k")
    gsm8k_train = load_rows("gsm8k", "train", FIX / "gsm8k")
    assert len(held) == 2 and not {r["id"] for r in held} & {r["id"] for r in train}
    assert not set(map(key, held)) & set(map(key, train))
    assert not set(map(key, held)) & set(map(key, test)) and not {r["id"] for r in held} & {r["id"] for r in test}
    assert {r["id"] for r in held} <= {r["id"] for r in gsm8k_train}
    assert {r["id"] for r in held} | {r["id"] for r in train if r["source"] == "gsm8k"} == {
        r["id"] for r in gsm8k_train}  # nothing lost: train = GSM8K train minus the held-out rows (+ DeepMath)
    assert held == load_dataset_rows(cfg, "heldout")  # deterministic


def test_no_dataset_config_holds_out_a_benchmark_test_split():
    """Every shipped config but the generated tasks (arithmetic, codeact_arith: their test split is drawn apart from
    train by construction) carves its held-out rows out of train, with a positive size."""
    for f in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        if f.stem in ("arithmetic", "codeact_arith"):
            continue
        comps = _components(OmegaConf.load(f))
        for comp in comps:
            assert "heldout_split" in comp and comp["heldout_split"] is None, f"{f.name}: {comp['name']}"
        assert sum(c["heldout_size"] for c in comps) > 0, f"{f.name} has no held-out rows"


def test_carved_heldout_is_disjoint_and_limit_applies():
    cfg = _cfg("deepmath", path=str(FIX / "deepmath"), heldout_size=1, limit=2)
    train, held = load_dataset_rows(cfg, "train"), load_dataset_rows(cfg, "heldout")
    assert len(train) == 2 and len(held) == 1 and held[0]["id"] not in {r["id"] for r in train}
    with pytest.raises(DataError, match="heldout_size=4 leaves no training rows"):
        load_dataset_rows(_cfg("deepmath", path=str(FIX / "deepmath"), heldout_size=4), "train")


def test_unknown_dataset_name_lists_valid_names():
    with pytest.raises(DataError, match=r"dataset.name='nope'.*valid: \[.*'gsm8k'"):
        load_dataset_rows({"name": "nope"}, "train")


def test_arithmetic_hook_dispatches_to_the_generator():
    pytest.importorskip("sspo_exp.data.arithmetic")
    cfg = {"name": "arithmetic", "digits": 2, "train_size": 30, "test_size": 10, "seed": 0}
    rows = load_dataset_rows(cfg, "train")
    assert len(rows) == 30 and rows[0]["source"] == "arithmetic"
    assert len(load_benchmark("arithmetic", cfg=cfg)) == 10
    assert load_dataset_rows(cfg, "heldout") == load_benchmark("arithmetic", cfg=cfg)  # default held-out: test
    assert "arithmetic" in LOADERS and set(BENCHMARKS) >= {"gsm8k", "math500", "aime24", "aime25", "arithmetic"}


# --------------------------------------------------------------------------------------- prompts
def _chat_tokenizer(with_bos=False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(["<unk>", "<s>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz "))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    if with_bos:
        from tokenizers import processors

        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return fast


def test_plain_prompt_without_chat_template():
    p = build_prompt("What is 2+3?", None)
    assert isinstance(p, str) and "What is 2+3?" in p and INSTRUCTION in p
    assert "<think>" in p and "</answer>" in p and not p.rstrip().endswith("<think>")  # the model writes <think>


def test_chat_template_prompt_is_rendered_with_generation_prompt():
    tok = _chat_tokenizer()
    p = build_prompt("What is 2+3?", tok)
    assert p == f"<s><|user|>{INSTRUCTION}\n\nWhat is 2+3?\n<|assistant|>"  # this tokenizer adds no BOS itself
    p = build_prompt("What is 2+3?", _chat_tokenizer(with_bos=True))
    assert p.startswith("<|user|>")  # the template's BOS is dropped: encoding adds it once


def test_rows_to_dataset_has_trl_columns():
    rows = load_rows("gsm8k", "test", FIX / "gsm8k")
    ds = rows_to_dataset(rows, None)
    assert ds.column_names == ["prompt", "answer", "id", "source"] and len(ds) == 4
    assert ds[2]["answer"] == "30000" and ds[2]["prompt"] == build_prompt(rows[2]["question"], None)


def test_only_the_columns_a_loader_reads_are_materialised():
    from sspo_exp.data.loaders import SPECS, read_raw

    raw = read_raw(SPECS["deepmath"], "train", FIX / "deepmath")  # r1_solution_* (~5 GB on the Hub) left on disk
    assert set(raw[0]) == {"question", "final_answer"}
