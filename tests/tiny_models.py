"""Tiny real causal LMs for tests: a random Llama or Qwen2 and a byte-level BPE
tokenizer trained on the fly, saved like a real checkpoint (safetensors,
tokenizer.json, chat template) so tests load them with `from_pretrained`.

    folder = build_tiny_model(tmp_path / "llama", arch="llama")

Two tokenizer flavours, as in real models: the llama one adds a BOS token
(`<s>`) in front of raw prompts; the qwen2 one adds nothing. Both know the
ChatML tokens `<|im_start|>` / `<|im_end|>` as special tokens.
"""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<s>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

_CORPUS = """
Is this review positive? Answer Yes or No. Yes. No. yes no YES NO Yes, yes, no, No.
Sentiment: positive. Sentiment: negative. Positive Negative POSITIVE NEGATIVE positive negative
Review: a warm, funny film. Review: the plot drags and the jokes fall flat.
Topic: World Sports Business Science world sports business science Tech tech
Department: billing shipping returns support sales Billing Shipping Returns Support Sales
Classify the text. Answer with one word. The answer is yes. The answer is no.
The quick brown fox jumps over the lazy dog 0123456789 again and again.
It was a charming and often affecting journey; unflinchingly bleak and desperate.
user assistant system You are a helpful assistant. Text: Label: Question: Answer:
"""


def _train_tokenizer(vocab_size: int = 700):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines * 20, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def build_tiny_model(folder: Path, arch: str = "llama", seed: int = 0) -> Path:
    """Write a tiny random `arch` ("llama" or "qwen2") model + tokenizer into `folder`; return it."""
    import torch
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer()
    if arch == "llama":
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<|pad|>",
            additional_special_tokens=["<|im_start|>"],
            unk_token="<|endoftext|>",
        )
    elif arch == "qwen2":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
            additional_special_tokens=["<|im_start|>"],
        )
    else:
        raise ValueError(f"unknown arch {arch!r}: use llama or qwen2")
    tokenizer.chat_template = CHAT_TEMPLATE

    common = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    if arch == "llama":
        config = LlamaConfig(bos_token_id=tokenizer.bos_token_id, **common)
        model = LlamaForCausalLM(config)
    else:
        config = Qwen2Config(tie_word_embeddings=False, **common)
        model = Qwen2ForCausalLM(config)
    # Random init gives nearly uniform next-token distributions; larger output
    # weights make the label probabilities differ clearly between texts.
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# -- task specs for tiny models ------------------------------------------------------------------

RAW_TEMPLATE = (
    "Is this review positive? Answer Yes or No.\n\n"
    "Review: a warm, funny film.\nAnswer: Yes\n\n"
    "Review: the plot drags and the jokes fall flat.\nAnswer: No\n\n"
    "Review: {text}\nAnswer:"
)
CHAT_MESSAGES = (
    {"role": "system", "content": "You are a helpful assistant. Answer with one word."},
    {"role": "user", "content": "Is this review positive? Answer Yes or No.\nReview: {text}"},
)
YES_NO = {"yes": ["Yes", "yes", "YES"], "no": ["No", "no", "NO"]}


def tiny_task_dict(
    model_folder: Path,
    *,
    chat: bool = False,
    labels: dict | None = None,
    max_input_tokens: int = 512,
    truncation_side: str = "right",
    template: str | None = None,
    name: str = "tiny",
) -> dict:
    """A task spec (as a dict) for a tiny model folder: a raw few-shot prompt, or a chat prompt."""
    prompt: dict = {"max_input_tokens": max_input_tokens, "truncation_side": truncation_side}
    if chat:
        prompt["messages"] = [dict(m) for m in CHAT_MESSAGES]
    else:
        prompt["template"] = template or RAW_TEMPLATE
    return {
        "name": name,
        "model": {"path": str(model_folder), "dtype": "auto", "device": "cpu"},
        "prompt": prompt,
        "labels": {k: list(v) for k, v in (labels or YES_NO).items()},
        "input": {"location": "batches", "id_column": "id", "text_column": "text"},
        "warehouse": {"path": "calscore.duckdb"},
    }


def tiny_spec(model_folder: Path, **kwargs):
    """A validated TaskSpec for a tiny model folder (see tiny_task_dict for the options)."""
    from calscore.jobs.spec import TaskSpec

    return TaskSpec.model_validate(tiny_task_dict(model_folder, **kwargs))


def _toml_value(value) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans are spelled the same in TOML and JSON


def write_tiny_task(path: Path, model_folder: Path, **kwargs) -> Path:
    """Write a task TOML file for a tiny model folder (`[model] path = ...`); return its path."""
    task = tiny_task_dict(model_folder, **kwargs)
    lines = [f"name = {_toml_value(task.pop('name'))}"]
    for section, body in task.items():
        lines.append(f"\n[{section}]")
        for key, value in body.items():
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def _toml_key(key: str) -> str:
    import json

    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
