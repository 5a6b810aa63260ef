"""The tiny cold start's shards (``model.cold_start.shards``, ``sspo_exp/stages/data_parallel.py``): a batch split into
parts has the whole batch's gradient; the weights are the same bit for bit whether one process computes the parts in
turn (with one or two torch threads) or one process per part does; a failing worker fails the caller."""

from __future__ import annotations

import os
import re
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.errors import ConfigError
from sspo_exp.models import tiny
from sspo_exp.stages import data_parallel, spec
from sspo_exp.stages import tiny as cold_start

# the tiny model's own architecture (conf/model/tiny.yaml): matrix products of its real sizes
ARCH = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
            max_position_embeddings=128)  # fmt: skip
COLD = dict(steps=4, batch_size=8, learning_rate=3e-3, warmup_steps=1, weight_decay=0.0)
# completions of different lengths, so the shards of a batch train on different token counts
PAIRS = [(f"{a}+{b}=", f"<answer>{a + b}</answer>" + " ok" * (a % 3)) for a in range(12) for b in range(3)]


def _trained(shards: int, processes: int | None, threads: int = 1) -> dict[str, torch.Tensor]:
    tok = tiny.build_tokenizer()
    model = tiny.build_model(ARCH, tok, seed=0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cold_start.train(model, tok, PAIRS, {**COLD, "shards": shards}, seed=0, log_every=0, processes=processes)
    finally:
        torch.set_num_threads(before)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _gradient(shards: int) -> torch.Tensor:
    tok = tiny.build_tokenizer()
    model = tiny.build_model(ARCH, tok, seed=0)
    rows = cold_start._encode(tok, PAIRS[:8])
    params = list(model.parameters())
    if shards == 1:
        model(**cold_start._batch(tok, rows), use_cache=False).loss.backward()
    else:
        cold_start._sharded_backward(model, tok, rows, shards, data_parallel.Ranks(), params)
    return torch.cat([p.grad.reshape(-1) for p in params])


@pytest.mark.parametrize("shards", [2, 4])
def test_the_shards_of_a_batch_have_the_whole_batchs_gradient(shards):
    # each part's loss is its summed token cross-entropy over the whole batch's token count: the parts add up to the
    # batch's mean (a per-part mean would weight the tokens of a short part more)
    whole, parts = _gradient(1), _gradient(shards)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-7)


FORK = pytest.mark.skipif(not data_parallel.available(), reason="data-parallel workers are forked on Linux only")


@FORK
def test_the_weights_do_not_depend_on_the_process_count():
    one = _trained(2, processes=1)
    two_threads = _trained(2, processes=1, threads=2)
    two = _trained(2, processes=2)
    for name, value in one.items():
        assert torch.equal(value, two[name]), f"{name}: one process and two processes differ"
        assert torch.equal(value, two_threads[name]), f"{name}: one and two torch threads differ"
    assert not torch.equal(one["model.embed_tokens.weight"], _untrained()), "nothing was trained"


@FORK
def test_four_shards_give_the_same_weights_in_one_process_or_four():
    # with more than two parts the order of the additions matters (a + b + c is not c + b + a in floating point)
    one, four = _trained(4, processes=1), _trained(4, processes=4)
    for name, value in one.items():
        assert torch.equal(value, four[name]), f"{name}: one process and four processes differ"


def _untrained() -> torch.Tensor:
    return tiny.build_model(ARCH, tiny.build_tokenizer(), seed=0).state_dict()["model.embed_tokens.weight"]


def test_one_process_per_shard_is_the_default_when_torch_may_use_that_many_threads(monkeypatch):
    seen = []
    monkeypatch.setattr(data_parallel, "run_ranks", lambda world, fn: seen.append(world))
    tok = tiny.build_tokenizer()
    model = tiny.build_model(ARCH, tok, seed=0)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            cold_start.train(model, tok, PAIRS, {**COLD, "shards": 2}, seed=0, log_every=0)
            cold_start.train(model, tok, PAIRS, {**COLD, "shards": 1}, seed=0, log_every=0)
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1, 2, 1]


def _fails_on_rank_one(ranks: data_parallel.Ranks) -> torch.Tensor:
    if ranks.rank == 1:
        raise SystemExit(3)
    return data_parallel.sum_in_order(torch.ones(3), ranks)


@FORK
def test_a_worker_that_fails_fails_the_caller_at_once_naming_it():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker\(s\) failed \(rank, exit status\): \[\(1, 3\)\]"):
        data_parallel.run_ranks(2, _fails_on_rank_one)
    assert time.monotonic() - start < 60  # gloo sees the closed connection; no wait for the exchange's timeout


@FORK
def test_a_worker_gone_before_the_group_forms_fails_the_caller_at_once(monkeypatch):
    def gone(parent):
        raise SystemExit(4)

    monkeypatch.setattr(data_parallel, "_die_with_parent", gone)  # the forked worker inherits it
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker\(s\) failed \(rank, exit status\): \[\(1, 4\)\]"):
        data_parallel.run_ranks(2, _fails_on_rank_one)
    assert time.monotonic() - start < 60  # not the group's 5-minute timeout


@FORK
def test_sum_in_order_adds_the_ranks_parts_in_rank_order():
    # float32: (1e8 + 1) - 1e8 == 0, while 1e8 - 1e8 + 1 == 1; the order is the one-process accumulation's
    parts = [1e8, 1.0, -1e8]
    total = data_parallel.run_ranks(3, lambda r: data_parallel.sum_in_order(torch.tensor([parts[r.rank], 2.0 * r.rank]), r))
    assert total.tolist() == [0.0, 6.0]


def _sums_while_rank_zero_reads_late(ranks: data_parallel.Ranks) -> list[float]:
    return [data_parallel.sum_in_order(torch.tensor([10.0 * call + ranks.rank]), ranks).item() for call in range(12)]


@FORK
def test_a_fast_rank_does_not_overwrite_a_part_a_slow_rank_has_not_read(monkeypatch):
    # rank 0 reads each call's parts 50 ms after the barrier; rank 1 meanwhile writes its next part (one buffer would
    # hand rank 0 that part instead of this call's)
    barrier = torch.distributed.barrier

    def slow_reader():
        barrier()
        if torch.distributed.get_rank() == 0:
            time.sleep(0.05)

    monkeypatch.setattr(data_parallel.dist, "barrier", slow_reader)
    assert data_parallel.run_ranks(2, _sums_while_rank_zero_reads_late) == [20.0 * call + 1 for call in range(12)]


def _buffer_files_after_a_sum(ranks: data_parallel.Ranks) -> list[str]:
    data_parallel.sum_in_order(torch.ones(3), ranks)
    torch.distributed.barrier()  # rank 0 has removed them
    return sorted(os.listdir(ranks.exchange.directory))


@FORK
def test_the_exchange_buffers_leave_no_file_once_every_rank_has_mapped_them():
    # a run killed later must not leave its buffers in /dev/shm (memory nothing frees before a reboot)
    assert data_parallel.run_ranks(2, _buffer_files_after_a_sum) == ["store"]


def _sizes_differ(ranks: data_parallel.Ranks) -> torch.Tensor:
    return data_parallel.sum_in_order(torch.ones(3 + ranks.rank), ranks)


@FORK
def test_ranks_summing_parts_of_different_sizes_fail_instead_of_reading_zeros():
    with pytest.raises(RuntimeError) as caught:
        data_parallel.run_ranks(2, _sizes_differ)
    errors = f"{caught.value} / {caught.value.__cause__}"  # this process's own error (the cause when a worker failed)
    assert "parts differ in size or dtype ([[3, 4, 1], [4, 4, 1]]" in errors, errors


@FORK
def test_an_empty_part_sums_to_an_empty_part():
    total = data_parallel.run_ranks(2, lambda r: data_parallel.sum_in_order(torch.ones(0), r))
    assert total.shape == (0,)


@FORK
def test_no_room_for_the_exchange_is_an_error_naming_where(monkeypatch):
    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data_parallel.os, "posix_fallocate", full)  # the forked worker inherits it
    with pytest.raises(RuntimeError) as caught:
        data_parallel.run_ranks(2, _sums_while_rank_zero_reads_late)
    # this process's own error, or (when the worker failed first) the cause of the "worker failed" one
    errors = f"{caught.value} / {caught.value.__cause__}"
    assert re.search(r"gradient exchange: no room for \d+\.\d MB in \S*sspo-dp-\S+ \(No space left", errors), errors


def _key(**cold):
    model = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "tiny.yaml"))
    dataset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / "arithmetic.yaml"))
    return spec.tiny_key(model, {**model["cold_start"], **cold}, dataset, 0)


@pytest.mark.parametrize("shards", [0, 3, 2.0, True, "2"])
def test_a_bad_shard_count_is_refused_naming_the_field(shards):
    with pytest.raises(ConfigError, match=r"model\.cold_start\.shards=.*divides model\.cold_start\.batch_size=64"):
        _key(shards=shards)


def test_one_shard_is_the_cold_start_from_before_the_field():
    # the CPU study's cold starts (model=tiny, shards: 1) keep their cache directory; two shards are another stage
    assert _key(shards=1) == _key() and "shards" not in _key()["cold_start"]
    assert _key(shards=2)["cold_start"]["shards"] == 2


def test_the_codeact_cold_start_refuses_shards():
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=["experiment=cpu_codeact", "model.cold_start.shards=2"])
    with pytest.raises(ConfigError, match=r"model\.cold_start\.shards=2: the codeact_arith cold start"):
        spec.cold_start_spec(cfg.model, cfg.model.cold_start, cfg.dataset, 0)


def test_a_batch_that_the_shards_do_not_divide_is_refused_before_training():
    tok = tiny.build_tokenizer()
    with pytest.raises(ValueError, match="shards=3: must be >= 1 and divide batch_size=8"):
        cold_start.train(tiny.build_model(ARCH, tok, seed=0), tok, PAIRS, {**COLD, "shards": 3}, seed=0, log_every=0)
