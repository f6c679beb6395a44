"""Train a LoRA adapter (peft) on labeled rows: the first-token label decision, early stopping on
validation NLL, seeded and deterministic on CPU.

    result = train_adapter(load_model(spec.model), spec.prompt, spec.labels, train, validation, TrainConfig())
    result.peft_model.save_pretrained(folder)          # via artifact.write_adapter

The base weights stay frozen; LoRA matrices go into every linear layer (attention and MLP) of
the top `top_layers` transformer blocks. Not all blocks: the backward pass then stops at the
lowest adapted block, which on the 30-block demo model makes a step ~1.5x cheaper than adapting
every block (measured), and a rule such as "sports facts are positive" is learnt near the output. The validation NLL is measured
before the first step and after every epoch; the adapter of the best epoch is kept, and training
stops after `patience` epochs without a better one. When no epoch beats the untrained model the
adapter kept is the initial one, which changes nothing (peft initialises LoRA's B to zero).

Determinism: LoRA's initial A matrices and the order of the rows come from `seed` alone (torch's
generator is forked, so the caller's random state is untouched); dropout is off, so the forward
pass of training is the forward pass of scoring. On CPU the same seed gives the same adapter,
byte for byte. On CUDA the model is bfloat16 with float32 LoRA weights (peft's default).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from calscore.jobs.finetune.errors import FinetuneError
from calscore.jobs.finetune.objective import FirstTokenObjective
from calscore.jobs.scoring.engine.attention import use_cpu_gqa_attention
from calscore.jobs.scoring.model_loading import LoadedModel
from calscore.jobs.scoring.prompting import PromptSpec


class TrainingError(FinetuneError):
    """Training cannot start with these rows or settings."""


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 5e-4
    batch_size: int = 8
    max_epochs: int = 6
    patience: int = 2
    seed: int = 0
    eval_batch_size: int = 32
    top_layers: int = 8

    def lora(self, model) -> dict:
        """The LoRA settings the manifest records (and peft's LoraConfig takes) for this model."""
        return {"r": self.rank, "lora_alpha": self.alpha, "lora_dropout": 0.0, "bias": "none",
                "task_type": "CAUSAL_LM", "target_modules": target_modules(model, self.top_layers)}

    def hyperparameters(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("rank", "alpha")}


def target_modules(model, top_layers: int) -> list[str]:
    """Full names of the linear layers inside the top `top_layers` blocks of the decoder stack
    (the longest ModuleList: any Hugging Face causal LM keeps its blocks in one)."""
    import torch

    stacks = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not stacks:
        raise TrainingError("cannot find the model's stack of transformer blocks (no ModuleList)")
    stack_name, stack = max(stacks, key=lambda item: len(item[1]))
    first = max(0, len(stack) - top_layers)
    return [f"{stack_name}.{i}.{name}" for i in range(first, len(stack))
            for name, m in stack[i].named_modules() if isinstance(m, torch.nn.Linear)]


@dataclass(frozen=True)
class Rows:
    """Texts and their label index (task label order)."""

    texts: Sequence[str]
    y: np.ndarray


@dataclass
class TrainResult:
    peft_model: object  # peft.PeftModel holding the best epoch's adapter
    lora: dict  # the LoRA settings it was made with (JSON)
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation NLL and objective
    best_epoch: int = 0
    seconds: float = 0.0
    train_rows_per_second: float = 0.0
    device: str = "cpu"

    def metrics(self) -> dict:
        best = self.history[self.best_epoch]
        return {"best_epoch": self.best_epoch, "epochs_run": len(self.history) - 1,
                "validation_nll_before": self.history[0]["validation_nll"], "validation_nll": best["validation_nll"],
                "history": self.history, "seconds": round(self.seconds, 2),
                "train_rows_per_second": round(self.train_rows_per_second, 2), "device": self.device}


def _evaluate(objective: FirstTokenObjective, ids: list[list[int]], y: np.ndarray, batch: int) -> dict:
    import torch

    lps = []
    with torch.no_grad():
        for start in range(0, len(ids), batch):
            lps.append(objective.label_logprobs(ids[start:start + batch]))
    lp = torch.cat(lps)
    t = torch.as_tensor(y)
    return {"validation_nll": float(objective.decision_nll(lp, t)), "validation_objective": float(objective.loss(lp, t))}


def _lora_state(peft_model) -> dict:
    return {k: v.detach().clone() for k, v in peft_model.named_parameters() if v.requires_grad}


def train_adapter(
    loaded: LoadedModel,
    prompt: PromptSpec,
    labels: Mapping[str, Sequence[str]],
    train: Rows,
    validation: Rows,
    config: TrainConfig = TrainConfig(),
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on `train`, keeping the epoch with the lowest validation NLL."""
    import torch
    from peft import LoraConfig, get_peft_model

    if len(train.texts) < 2 or len(validation.texts) < 1:
        raise TrainingError(f"need at least 2 training rows and 1 validation row (got {len(train.texts)} and "
                            f"{len(validation.texts)})")
    lora = config.lora(loaded.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        peft_model = get_peft_model(loaded.model, LoraConfig(**lora))
    model = peft_model.get_base_model()  # the same modules, LoRA layers in place; the engine's forward API
    model.eval()  # dropout is off anyway; eval keeps any other train-only behaviour off
    if loaded.device == "cpu":
        use_cpu_gqa_attention(model)  # the scorer's CPU attention: same numbers, no copied cache heads
    objective = FirstTokenObjective(model, loaded.tokenizer, prompt, labels, loaded.device)
    train_ids, val_ids = objective.encode(list(train.texts)), objective.encode(list(validation.texts))
    train_y = np.asarray(train.y, dtype=np.int64)
    # Once the training loss nears zero, gradients and Adam's moments turn subnormal, and CPU float
    # arithmetic on subnormals is ~100x slower (measured: one step went from 0.8 s to minutes).
    torch.set_flush_denormal(True)
    try:
        return _train(peft_model, objective, lora, loaded.device, train_ids, train_y, val_ids, validation, config, on_step)
    finally:
        torch.set_flush_denormal(False)


def _train(peft_model, objective, lora, device, train_ids, train_y, val_ids, validation, config, on_step) -> TrainResult:
    import torch

    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    result = TrainResult(peft_model=peft_model, lora=lora, device=device)
    result.history.append({"epoch": 0, "train_loss": None, **_evaluate(objective, val_ids, validation.y, config.eval_batch_size)})
    best_nll, best_state, stale = result.history[0]["validation_nll"], _lora_state(peft_model), 0
    steps_per_epoch = -(-len(train_ids) // config.batch_size)
    started = time.monotonic()
    for epoch in range(1, config.max_epochs + 1):
        order = rng.permutation(len(train_ids))
        losses = []
        for step in range(steps_per_epoch):
            rows = order[step * config.batch_size:(step + 1) * config.batch_size]
            lp = objective.label_logprobs([train_ids[i] for i in rows])
            loss = objective.loss(lp, torch.as_tensor(train_y[rows]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step({"epoch": epoch, "step": step + 1, "steps": steps_per_epoch, "loss": losses[-1]})
        figures = _evaluate(objective, val_ids, validation.y, config.eval_batch_size)
        result.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **figures})
        if on_step:
            on_step({"epoch": epoch, "step": steps_per_epoch, "steps": steps_per_epoch, "loss": float(np.mean(losses)),
                     "validation_nll": figures["validation_nll"]})
        if figures["validation_nll"] < best_nll:
            best_nll, best_state, stale, result.best_epoch = figures["validation_nll"], _lora_state(peft_model), 0, epoch
        else:
            stale += 1
            if stale >= config.patience:
                break
    result.seconds = time.monotonic() - started
    epochs = len(result.history) - 1
    result.train_rows_per_second = epochs * len(train_ids) / max(result.seconds, 1e-9)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if name in best_state:
                p.copy_(best_state[name])
    return result
