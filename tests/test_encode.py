"""``sspo_exp.models.encode``: the ids of the tokenizer's own call, through its Rust backend when that gives the same
(special tokens added by a post-processor, special-token text split or not, a backend left truncating)."""

from __future__ import annotations

from tokenizers.processors import TemplateProcessing

from sspo_exp.models import encode, tiny

TEXTS = ["47+38\n<answer>85</answer>", "9-12\n", "<think>7+8=15</think>"]


def _with_bos():
    tok = tiny.build_tokenizer(tiny.CODEACT_TAGS)
    bos = tok.convert_tokens_to_ids(tok.eos_token)  # any special token: the post-processor puts it first
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=f"{tok.eos_token} $A",
                                                              special_tokens=[(tok.eos_token, bos)])  # fmt: skip
    return tok


def test_the_ids_are_the_tokenizers_with_and_without_special_tokens():
    tok = _with_bos()
    assert encode(tok, TEXTS) == tok(TEXTS).input_ids
    assert encode(tok, TEXTS, add_special_tokens=False) == tok(TEXTS, add_special_tokens=False).input_ids
    assert encode(tok, TEXTS)[0][0] == tok.eos_token_id and encode(tok, TEXTS, add_special_tokens=False)[0][0] != \
        tok.eos_token_id  # the post-processor really adds one


def test_split_special_tokens_are_split_as_the_tokenizer_splits_them():
    tok = tiny.build_tokenizer()
    texts = [f"1+1{tok.eos_token}"]
    whole = encode(tok, texts)
    tok.split_special_tokens = True  # the special token's text as its characters; the backend alone keeps it whole
    assert encode(tok, texts) == tok(texts).input_ids != whole


def test_a_backend_left_truncating_by_an_earlier_call_gives_whole_ids():
    tok = tiny.build_tokenizer()
    tok(["1+1\n"], truncation=True, max_length=2)
    assert tok.backend_tokenizer.truncation is not None  # transformers leaves it set after this call
    assert encode(tok, ["12+34\n"]) == tok(["12+34\n"]).input_ids and len(encode(tok, ["12+34\n"])[0]) > 2


def test_the_backend_encodes_without_the_python_wrapper(monkeypatch):
    tok = tiny.build_tokenizer()
    expected = tok(TEXTS).input_ids

    def wrapper(*args, **kwargs):
        raise AssertionError("the Python wrapper encoded")

    monkeypatch.setattr(type(tok), "_encode_plus", wrapper)  # the fast class's own step: still the plain class
    assert encode(tok, TEXTS) == expected


def test_a_tokenizer_class_that_encodes_its_own_way_goes_through_its_own_call():
    tok = tiny.build_tokenizer()

    class Infilling(type(tok)):  # e.g. CodeLlama's <FILL_ME>: its own _encode_plus
        def _encode_plus(self, *args, **kwargs):
            out = super()._encode_plus(*args, **kwargs)
            out["input_ids"] = [[7] + ids for ids in out["input_ids"]]
            return out

    tok.__class__ = Infilling
    assert encode(tok, TEXTS) == tok(TEXTS).input_ids and encode(tok, TEXTS)[0][0] == 7


def test_no_texts_give_no_ids():
    assert encode(tiny.build_tokenizer(), []) == []
