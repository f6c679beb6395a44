"""The training objective: the label decision at the first answer token, as the engine scores it.

    objective = FirstTokenObjective(model, tokenizer, spec.prompt, spec.labels, device)
    ids = objective.encode(texts)
    lp = objective.label_logprobs([ids[i] for i in batch])     # (B, K) torch, with grad when enabled
    loss = objective.loss(lp, y)                                # -log p(true label's tokens), mean

Prompts and verbalizers are the scorer's own (`PromptBuilder`, `resolve_verbalizers`), so the
model is trained on exactly the token ids it is later scored on, and a label's log-probability
is the log-sum-exp over its variants' first-token ids of the full-vocabulary log-softmax.

Loss: -log P(any variant of the true label), the full-vocabulary mass of the label's tokens.
Not the canonical variant alone: scoring sums the variants, so moving mass from "Positive" to
"positive" would cost loss and change no score. Not the share renormalised over the labels
alone either: that leaves the off-label mass free to grow, and rows below the coverage floor
go to manual whatever their label. This loss is the renormalised decision's NLL plus
-log(coverage). Early stopping watches the decision's NLL (`decision_nll`), the figure the
reports and calibrators measure.

The prompt part every row shares (instruction, few-shot examples) is computed once per batch
without gradient, with the current adapter, and reused as a key/value cache: the forward is
exact, and the gradient flows through the rows' own tokens only. On the demo prompt that is
~100 of ~130 tokens per row, so a training step costs about a quarter of a full one.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from calscore.jobs.scoring.engine.packing import model_inputs
from calscore.jobs.scoring.engine.prefix_cache import SharedPrefix
from calscore.jobs.scoring.prompting import PromptBuilder, PromptSpec
from calscore.jobs.scoring.verbalizers import resolve_verbalizers


class FirstTokenObjective:
    def __init__(self, model, tokenizer, prompt: PromptSpec, labels: Mapping[str, Sequence[str]], device: str):
        import torch

        self.model = model  # the Hugging Face model (LoRA layers injected in place by peft)
        self.device = torch.device(device)
        self.builder = PromptBuilder(tokenizer, prompt)
        verbalizers = resolve_verbalizers(self.builder, labels)
        width = max(len(ids) for ids in verbalizers.token_ids)
        # (K, width) token ids per label, padded with the label's first id and masked out
        index = [list(ids) + [ids[0]] * (width - len(ids)) for ids in verbalizers.token_ids]
        mask = [[j < len(ids) for j in range(width)] for ids in verbalizers.token_ids]
        self.index = torch.tensor(index, dtype=torch.long, device=self.device)
        self.mask = torch.tensor(mask, dtype=torch.bool, device=self.device)
        self.prefix_ids = list(self.builder.shared_prefix_ids)
        pads = (tokenizer.pad_token_id, tokenizer.eos_token_id, 0)
        self.pad_id = int(next(p for p in pads if p is not None))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.builder.encode(texts).ids

    def label_logprobs(self, seqs: Sequence[Sequence[int]]):
        """(B, K) label log-probabilities of the rows, in their order (gradient as the caller enables)."""
        import torch

        prefix = SharedPrefix(self.model, self.prefix_ids, self.device)
        covered = [i for i, s in enumerate(seqs) if prefix.covers(list(s))]
        if covered and not prefix.ensure(True, lambda exact: torch.no_grad()):
            covered = []
        in_prefix = set(covered)
        rest = [i for i in range(len(seqs)) if i not in in_prefix]
        out = [None] * len(seqs)
        for rows, past in ((covered, len(prefix)), (rest, 0)):
            if not rows:
                continue
            lp = self._forward([list(seqs[i])[past:] for i in rows], past, prefix)
            for j, i in enumerate(rows):
                out[i] = lp[j]
        return torch.stack(out)

    def _forward(self, seqs: list[list[int]], past: int, prefix: SharedPrefix):
        import torch

        kwargs = model_inputs(seqs, past, self.pad_id, self.device, prefix)
        logits = self.model(**kwargs).logits[:, -1, :]
        vocab_lp = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        gathered = vocab_lp[:, self.index]  # (B, K, width)
        return torch.logsumexp(gathered.masked_fill(~self.mask, float("-inf")), dim=-1)

    @staticmethod
    def loss(label_lp, y):
        """Mean -log P(true label's tokens) over the full vocabulary (see the module docstring)."""
        import torch

        return -label_lp[torch.arange(len(y)), y].mean()

    @staticmethod
    def decision_nll(label_lp, y):
        """Mean NLL of the true label among the labels (each label's share of the label mass)."""
        import torch

        shares = torch.log_softmax(label_lp, dim=-1)
        return -shares[torch.arange(len(y)), y].mean()
