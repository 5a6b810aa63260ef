"""The tiny cold start's SFT batches: a demonstration is tokenized once, and its batch trains on the completion only
(the prompt, an observation segment and the padding are -100), with ``<eos>`` after a one-string completion and none
after a multi-turn one."""

from __future__ import annotations

import random

import torch

from sspo_exp.models import tiny
from sspo_exp.stages import tiny as cold_start


def _ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_the_batch_trains_on_completions_only_and_pads_on_the_right():
    tok = tiny.build_tokenizer(tiny.CODEACT_TAGS)
    pairs = [("12+3\n", "<answer>15</answer>"),
             ("7*8\n", [("<execute>print(7*8)</execute>", True), ("\nObservation:\n56\n", False),
                        ("<solution>56</solution>", True)])]  # fmt: skip
    batch = cold_start._batch(tok, cold_start._encode(tok, pairs))
    first = _ids(tok, "12+3\n") + _ids(tok, "<answer>15</answer>") + [tok.eos_token_id]
    act, obs, sol = (_ids(tok, t) for t in ("<execute>print(7*8)</execute>", "\nObservation:\n56\n", "<solution>56</solution>"))
    second = _ids(tok, "7*8\n") + act + obs + sol
    width = max(len(first), len(second))
    assert batch["input_ids"].shape == (2, width)
    assert batch["input_ids"][0, : len(first)].tolist() == first
    assert batch["input_ids"][1, : len(second)].tolist() == second
    assert batch["attention_mask"].sum(1).tolist() == [len(first), len(second)]
    p0, p1 = len(_ids(tok, "12+3\n")), len(_ids(tok, "7*8\n"))
    assert batch["labels"][0].tolist() == [-100] * p0 + first[p0:] + [-100] * (width - len(first))
    assert batch["labels"][1].tolist() == ([-100] * p1 + act + [-100] * len(obs) + sol
                                           + [-100] * (width - len(second)))  # fmt: skip


def test_sampling_encoded_rows_draws_the_same_demonstrations_as_sampling_the_pairs():
    # the cold start's batches (and so its cached policy) do not depend on whether the rows were encoded first
    tok = tiny.build_tokenizer()
    pairs = [(f"{a}+{a}\n", f"<answer>{2 * a}</answer>") for a in range(50)]
    encoded = cold_start._encode(tok, pairs)
    picked_pairs, picked_rows = random.Random(5).sample(pairs, 8), random.Random(5).sample(encoded, 8)
    assert [cold_start._encode(tok, [p])[0] for p in picked_pairs] == picked_rows


def _demonstrations(n: int) -> list[tuple[str, str]]:
    rng = random.Random(3)
    return [(f"{a}+{b}\n", f"<think>{a % 10}+{b % 10}={a % 10 + b % 10}</think> <answer>{a + b}</answer>")
            for a, b in ((rng.randrange(100), rng.randrange(1000 if i % 3 else 10)) for i in range(n))]


def test_a_packed_batch_holds_every_sequence_once_with_its_own_positions_and_labels():
    tok = tiny.build_tokenizer()
    encoded = cold_start._encode(tok, _demonstrations(14))
    batch = cold_start._packed_batch(tok, encoded, 40)
    tokens = sum(len(t) for t, _ in encoded)
    assert batch["input_ids"].shape[0] == -(-tokens // 40) and "attention_mask" not in batch
    found = []
    for ids, labels, positions in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                                      batch["position_ids"].tolist()):  # fmt: skip
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for start, end in zip(starts, starts[1:]):
            assert positions[start:end] == list(range(end - start))  # each sequence counts from 0
            found.append((ids[start:end], labels[start:end]))
    expected = [(t, [i if k else -100 for i, k in zip(t, keep)]) for t, keep in encoded]
    padding = [(ids, labels) for ids, labels in found if set(ids) == {tok.pad_token_id}]
    assert sorted(f for f in found if f not in padding) == sorted(expected)
    assert all(set(labels) == {-100} for _, labels in padding)


def test_a_packed_batch_has_the_padded_batchs_loss_and_gradient():
    # attention stays inside each sequence (transformers reads the restarting position ids), so packing changes
    # only float rounding; a mask that let one sequence see another would move the loss far more than 1e-5
    tok = tiny.build_tokenizer()
    model = tiny.build_model({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 128},
                             tok, seed=0)  # fmt: skip
    encoded = cold_start._encode(tok, _demonstrations(14))
    n = sum(sum(keep[1:]) for _, keep in encoded)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):  # a model that has learnt something: an untrained one predicts ~uniformly, whatever it sees
        model(**cold_start._batch(tok, encoded), use_cache=False).loss.backward()
        opt.step()
        opt.zero_grad()
    grads = []
    for batch in (cold_start._batch(tok, encoded), cold_start._packed_batch(tok, encoded, 48)):
        model.zero_grad()
        loss = model(**batch, use_cache=False, num_items_in_batch=n).loss
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (padded, g_padded), (packed, g_packed) = grads
    assert abs(padded - packed) < 1e-5
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g_padded, g_packed))
