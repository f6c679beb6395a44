"""Answer variants resolved to first tokens in context: leading spaces, case variants,
duplicates, multi-token variants, collisions and unknown tokens."""
from __future__ import annotations

import pytest

from calscore.jobs.scoring.prompting import PromptBuilder
from calscore.jobs.scoring.verbalizers import VerbalizerError, resolve_verbalizers
from tiny_models import build_tiny_model, tiny_spec


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_verbalizers") / "llama", arch="llama")


@pytest.fixture(scope="module")
def tok(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def resolve(tok, folder, labels, **kwargs):
    spec = tiny_spec(folder, labels=labels, **kwargs)
    return resolve_verbalizers(PromptBuilder(tok, spec.prompt), spec.labels)


def token_id(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens in the tiny vocabulary"
    return ids[0]


def test_leading_space_after_a_colon_and_case_variants(tok, folder):
    # The raw prompt ends with "Answer:", so "Yes" is written " Yes" by the model.
    v = resolve(tok, folder, {"yes": ["Yes", "yes", "YES"], "no": ["No", "no", "NO"]})
    assert v.token_ids[0] == (token_id(tok, " Yes"), token_id(tok, " yes"), token_id(tok, " YES"))
    assert v.token_ids[1] == (token_id(tok, " No"), token_id(tok, " no"), token_id(tok, " NO"))
    assert {r["answer"] for r in v.report() if r["label"] == "yes"} == {" Yes", " yes", " YES"}
    assert all(r["status"] == "ok" for r in v.report())


def test_no_leading_space_after_a_newline(tok, folder):
    # The chat prompt ends with "<|im_start|>assistant\n": the answer follows without a space.
    v = resolve(tok, folder, {"yes": ["yes", "Yes"], "no": ["no", "No"]}, chat=True)
    by_variant = {r["variant"]: r for r in v.report()}
    assert by_variant["yes"]["answer"] == "yes"
    assert by_variant["yes"]["token_id"] == tok("yes", add_special_tokens=False)["input_ids"][0]
    assert by_variant["yes"]["status"] == "ok"
    # "Yes" without a space is two tokens ("Y", "es"): its first token is a fragment, dropped and reported.
    assert by_variant["Yes"]["status"] == "dropped" and by_variant["Yes"]["n_tokens"] == 2
    assert by_variant["Yes"]["token_id"] not in v.token_ids[0]
    # "no" and "No" are both multi-token and the label has no one-token variant: scored by first tokens.
    assert by_variant["no"]["status"] == "partial" and by_variant["No"]["status"] == "partial"
    assert set(v.token_ids[1]) == {by_variant["no"]["token_id"], by_variant["No"]["token_id"]}


def test_duplicates_are_counted_once(tok, folder):
    v = resolve(tok, folder, {"pos": ["positive", " positive"], "neg": ["negative"]})
    assert v.token_ids[0] == (token_id(tok, " positive"),)
    assert [r["status"] for r in v.report() if r["label"] == "pos"] == ["ok", "duplicate"]


def test_a_token_claimed_by_two_labels_is_an_error(tok, folder):
    # " Sportsx" and " Sportsy" both start with the token " Sports".
    with pytest.raises(VerbalizerError, match="Sports") as err:
        resolve(tok, folder, {"a": ["Sportsx"], "b": ["Sportsy"]})
    assert "'a'" in str(err.value) and "'b'" in str(err.value)


def test_prompt_ending_in_a_space_resolves_to_the_token_that_continues_it(tok, folder):
    template = "Is this review positive?\nReview: {text}\nAnswer: "
    v = resolve(tok, folder, {"yes": ["yes"], "no": ["no"]}, template=template)
    for r in v.report():
        assert r["answer"] == r["variant"]  # no extra space after a prompt that ends with one
        assert r["answer"].startswith(r["token"]) and r["token"]


def test_an_unknown_token_is_detected_never_used(tmp_path):
    """A word-level tokenizer without byte fallback: 'YES' is not in its vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "Question", ":", "Answer", "yes", "no", "x", "is", "it", "good", "?"]
    wl = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, unk_token="[UNK]")
    assert tok.convert_tokens_to_ids("YES") == tok.unk_token_id  # the trap in-context resolution avoids
    spec = tiny_spec(tmp_path, labels={"yes": ["yes", "YES"], "no": ["no"]}, template="Question: {text} Answer:")
    builder = PromptBuilder(tok, spec.prompt)
    with pytest.raises(VerbalizerError, match="'YES'"):
        resolve_verbalizers(builder, spec.labels)
    ok = resolve_verbalizers(builder, {"yes": ["yes"], "no": ["no"]})
    assert ok.token_ids == ((words.index("yes"),), (words.index("no"),))


def test_describe_lists_every_variant(tok, folder):
    v = resolve(tok, folder, {"yes": ["Yes", "yes"], "no": ["No", "Nope-nope"]})
    text = v.describe()
    for variant in ["'Yes'", "'yes'", "'No'", "'Nope-nope'"]:
        assert variant in text
    assert "dropped" in text  # " Nope-nope" is several tokens and " No" is one
