"""Our datasets as verl's RL parquet files: ``python -m sspo_exp.integrations.verl_data OUT_DIR``.

verl's ``RLHFDataset`` reads rows ``{data_source, prompt: [chat messages], ability, reward_model: {style,
ground_truth}, extra_info}`` and applies the model's chat template to ``prompt``. Rows come from our loaders
(``sspo_exp.data``) and prompts from ``sspo_exp.data.prompts.build_messages`` (the zero-shot instruction of the TRL
path), so both engines train and validate on the same problems with the same words. Written:

- ``gsm8k_deepmath_train.parquet``: the Table 1 mixture's training rows (conf/dataset/gsm8k_deepmath.yaml);
- ``table1_val.parquet``: ``data_source`` = ``heldout`` (the mixture's held-out GSM8K train rows, the selection
  metric), ``gsm8k``, ``math500``, ``aime25`` (Table 1's benchmarks; the report's columns, sspo_exp/report/engines.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from sspo_exp.data import load_benchmark, load_dataset_rows
from sspo_exp.data.prompts import build_messages

TABLE1_BENCHMARKS = ("gsm8k", "math500", "aime25")
HELDOUT = "heldout"  #: sspo_exp.report.engines.HELDOUT_SOURCE reads this data_source as the selection metric


def verl_rows(rows: Iterable[Mapping[str, Any]], data_source: str) -> list[dict]:
    """Our rows ``{id, question, answer, source}`` in verl's RL layout."""
    return [{"data_source": data_source, "prompt": build_messages(r["question"]), "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": str(r["answer"])},
             "extra_info": {"id": r["id"], "source": r.get("source", data_source)}} for r in rows]  # fmt: skip


def write_parquet(rows: list[dict], path: Path) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame.from_records(rows).to_parquet(path, index=False)
    return path


def write_table1(out_dir: Path, dataset: Mapping[str, Any], benchmarks: Iterable[str] = TABLE1_BENCHMARKS) -> list[Path]:
    """The two files of recipes/verl/table1.yaml from a dataset config (a mixture or a single dataset)."""
    train = verl_rows(load_dataset_rows(dataset, "train"), str(dataset.get("name")))
    val = verl_rows(load_dataset_rows(dataset, "heldout"), HELDOUT)
    for b in benchmarks:
        val += verl_rows(load_benchmark(b), b)
    return [write_parquet(train, out_dir / "gsm8k_deepmath_train.parquet"),
            write_parquet(val, out_dir / "table1_val.parquet")]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sspo_exp.integrations.verl_data OUT_DIR  (needs GSM8K, DeepMath-103K, MATH-500, "
              "AIME25 from the Hub or their local paths in conf/dataset/gsm8k_deepmath.yaml)", file=sys.stderr)  # fmt: skip
        return 2
    conf = Path(__file__).parents[1] / "conf" / "dataset" / "gsm8k_deepmath.yaml"  # the packaged config
    for p in write_table1(Path(argv[0]), OmegaConf.to_container(OmegaConf.load(conf))):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
