"""The cold starts show progress (issue: a minute or more of silence on a slow machine): the tiny cold start a
tqdm bar on a terminal and a line every ``log_every`` steps (and every ``LOG_SECONDS``) in a log file; the SFT
cold start transformers' own bar on a terminal and its per-``logging_steps`` lines otherwise."""

from __future__ import annotations

import io

import pytest

from sspo_exp.models import tiny
from sspo_exp.stages import sft
from sspo_exp.stages import tiny as cold_start

ARCH = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=64)  # fmt: skip
COLD = dict(steps=6, batch_size=2, learning_rate=1e-3, warmup_steps=1, weight_decay=0.0)
PAIRS = [("1+2=", "3"), ("2+2=", "4"), ("3+4=", "7"), ("5-1=", "4")]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class LogFile(io.StringIO):
    def isatty(self) -> bool:
        return False


def _train(monkeypatch, stderr, log_every=2):
    monkeypatch.setattr("sys.stderr", stderr)
    tok = tiny.build_tokenizer()
    model = tiny.build_model(ARCH, tok, seed=0)
    cold_start.train(model, tok, PAIRS, COLD, seed=0, log_every=log_every)


def test_tiny_cold_start_draws_a_bar_on_a_terminal(monkeypatch, capsys):
    term = Terminal()
    _train(monkeypatch, term)
    bar = term.getvalue()
    assert "cold start" in bar and "6/6" in bar and "loss=" in bar, bar
    assert "cold start: step" not in capsys.readouterr().out  # no duplicate lines under the bar


def test_tiny_cold_start_writes_lines_into_a_log_file(monkeypatch, capsys):
    log = LogFile()
    _train(monkeypatch, log)
    out = capsys.readouterr().out
    assert [line.split(" loss")[0] for line in out.splitlines()] == [f"cold start: step {s}/6" for s in (2, 4, 6)]
    assert "it/s" not in log.getvalue() and "%|" not in log.getvalue()  # no bar's carriage returns in the log


def test_tiny_cold_start_is_never_silent_for_long_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(cold_start, "LOG_SECONDS", 0.0)  # every step is "long since the last line"
    _train(monkeypatch, LogFile(), log_every=100)
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_tiny_cold_start_log_every_0_is_quiet(monkeypatch, capsys):
    term = Terminal()
    _train(monkeypatch, term, log_every=0)
    assert term.getvalue() == "" and capsys.readouterr().out == ""


SFT_FIELDS = {"max_steps": 1, "num_train_epochs": 1, "per_device_train_batch_size": 1, "learning_rate": 1e-4,
              "lr_scheduler_type": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
              "max_length": 8, "bf16": False, "gradient_checkpointing": False, "save_steps": 1, "logging_steps": 1}


class Stop(Exception):
    pass


@pytest.mark.parametrize("stderr, disabled", [(Terminal(), False), (LogFile(), True)])
def test_sft_cold_start_asks_transformers_for_its_bar_on_a_terminal_only(monkeypatch, tmp_path, stderr, disabled):
    """The SFTConfig that sft.build makes: disable_tqdm follows the terminal (captured where it is made, before any
    model loads)."""
    import trl

    seen = {}

    def config(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr(trl, "SFTConfig", config)
    with pytest.raises(Stop):
        sft.build(tmp_path, {"path": "x"}, SFT_FIELDS, {}, seed=0)
    assert seen["disable_tqdm"] is disabled
