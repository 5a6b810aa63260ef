"""The tiny cold start's SFT batches: a demonstration is tokenized once, and its batch trains on the completion only
(the prompt, an observation segment and the padding are -100), with ``<eos>`` after a one-string completion and none
after a multi-turn one."""

from __future__ import annotations

import random

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


def test_encoding_through_the_backend_gives_the_tokenizers_ids():
    # _encode skips the Python wrapper of the tokenizer; the ids must be those tokenizer(text) gives, tags included
    tok = tiny.build_tokenizer(tiny.CODEACT_TAGS)
    pairs = [("47+38\n", "<think>7+8=15 4+3+1=8</think> <answer>85</answer>"),
             ("9-12\n", [("<execute>print(9-12)</execute>", True), ("\nObservation:\n-3\n", False)])]  # fmt: skip
    (first, _), (second, _) = cold_start._encode(tok, pairs)
    assert first == _ids(tok, "47+38\n<think>7+8=15 4+3+1=8</think> <answer>85</answer>") + [tok.eos_token_id]
    assert second == _ids(tok, "9-12\n<execute>print(9-12)</execute>\nObservation:\n-3\n")
    assert tok.convert_tokens_to_ids("<think>") in first  # a tag is one token, not seven characters


def test_a_tokenizer_left_padding_by_an_earlier_call_still_gives_unpadded_ids():
    tok = tiny.build_tokenizer()
    tok(["1+1\n", "12+34\n"], padding=True)  # transformers leaves the backend padding after this call
    pairs = [("1+1\n", "<answer>2</answer>"), ("12+34\n", "<answer>46</answer>")]
    (first, _), (second, _) = cold_start._encode(tok, pairs)
    assert first == _ids(tok, "1+1\n<answer>2</answer>") + [tok.eos_token_id]
    assert second == _ids(tok, "12+34\n<answer>46</answer>") + [tok.eos_token_id]
