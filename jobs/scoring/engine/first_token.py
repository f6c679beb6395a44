"""First-token scoring: label log-probabilities from one forward pass per batch.

    scorer = FirstTokenScorer(load_model(spec.model), spec.prompt, spec.labels)
    table = scorer.score(["a text", ...])          # pyarrow.Table in SCORE_SCHEMA, one row per text, input order

For each row, the model's next-token distribution after the prompt is taken at
the last prompt position only (`logits_to_keep=1`: never batch x sequence x
vocabulary logits), log-softmaxed over the full vocabulary in float32, and each
label's log-probability is the log-sum-exp over its verbalizer token ids.

Throughput: rows are sorted by length and packed into token-budget batches
(`packing`); the prompt part every row shares is computed once and its key/value
cache reused (`prefix_cache`); rows that do not start with it get a full forward.
When a batch runs out of (GPU) memory it is split in halves and retried, and later
batches use a smaller budget.

Precision: float32 on CPU by default (matches per-row `generate` to ~1e-5). The
opt-in bfloat16 mode on CPU (`dtype = "bfloat16"`) runs the linear layers' matmuls
in bfloat16 where this CPU supports it (`precision`), then re-scores in float32 the
rows whose top two labels are closer than `recheck_margin` nats, so close calls get
the float32 label; where the CPU has no bfloat16 path it runs float32 and says so
(`describe()["precision"]`). On CUDA the model itself is bfloat16.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from calscore.jobs.scoring.engine.attention import use_cpu_gqa_attention
from calscore.jobs.scoring.engine.explanation import explain_first_token
from calscore.jobs.scoring.engine.packing import model_inputs, token_budget_batches
from calscore.jobs.scoring.engine.precision import FORWARD_LOCK, bf16_linear_matmuls, bf16_matmul_takes_effect
from calscore.jobs.scoring.engine.prefix_cache import SharedPrefix
from calscore.jobs.scoring.explain import Explanation
from calscore.jobs.scoring.model_loading import LoadedModel
from calscore.jobs.scoring.prompting import PromptBuilder, PromptSpec
from calscore.jobs.scoring.schema import TOP_TOKEN_TYPE, score_table
from calscore.jobs.scoring.verbalizers import Verbalizers, resolve_verbalizers

log = logging.getLogger(__name__)

# Padded tokens per forward pass. On a 2-core CPU with the 135M demo model, 512
# was fastest (float32: 28-30 rows/s at 512 and 1024, 24-27 at 2048, 24 at 4096;
# bfloat16 likewise): the activations of a batch stay in cache, and the many
# memory-bound elementwise ops of a layer dominate once the matmuls are fast.
DEFAULT_CPU_TOKEN_BUDGET = 512
DEFAULT_CUDA_TOKEN_BUDGET = 32768
PRECISION_FLOAT32 = "float32"
PRECISION_BF16_MATMULS = "bfloat16 matmuls (float32 weights), close calls re-checked in float32"


def _oom_errors() -> tuple[type[BaseException], ...]:
    import torch

    errors = [torch.cuda.OutOfMemoryError]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(set(errors))


class FirstTokenScorer:
    """Scores texts for one prompt and label set with one loaded model (a `Scorer`)."""

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: PromptSpec,
        labels: Mapping[str, Sequence[str]],
        *,
        token_budget: int | None = None,
        top_k: int = 0,
        prefix_reuse: bool = True,
        recheck_margin: float = 0.15,
        version_parts: Mapping[str, Any] | None = None,
    ):
        import torch

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = torch.device(loaded.device)
        self.top_k = int(top_k)
        if token_budget is None:
            token_budget = DEFAULT_CUDA_TOKEN_BUDGET if self.device.type == "cuda" else DEFAULT_CPU_TOKEN_BUDGET
        if token_budget < 1:
            raise ValueError("token_budget must be positive")
        self.token_budget = int(token_budget)
        self.prompt = PromptBuilder(self.tokenizer, prompt)
        self.verbalizers: Verbalizers = resolve_verbalizers(self.prompt, labels)
        self.labels: tuple[str, ...] = tuple(self.verbalizers.labels)
        self.verbalizer_report: list[dict] = self.verbalizers.report()
        self._pad_id = self._pick_pad_id()
        self._label_index = [torch.tensor(ids, dtype=torch.long, device=self.device) for ids in self.verbalizers.token_ids]
        self._token_texts: dict[int, str] = {}
        if self.device.type == "cpu":
            use_cpu_gqa_attention(self.model)
        self.prefix = SharedPrefix(self.model, self.prompt.shared_prefix_ids if prefix_reuse else [], self.device)
        bf16_requested = (
            loaded.dtype == "bfloat16"
            and self.device.type == "cpu"
            and next(self.model.parameters()).dtype == torch.float32
        )
        self._fast_matmul = bf16_requested and bf16_matmul_takes_effect()
        if bf16_requested and not self._fast_matmul:
            log.warning("bfloat16 was asked for, but this CPU has no oneDNN bfloat16 matmul path "
                        "(the switch changes nothing here): scoring in float32")
        self.precision = PRECISION_BF16_MATMULS if self._fast_matmul else (
            "bfloat16" if loaded.dtype == "bfloat16" and self.device.type != "cpu" else PRECISION_FLOAT32
        )
        self.recheck_margin = float(recheck_margin)
        self.version_parts = dict(version_parts or {})
        self.stats = {
            "rows": 0, "rows_full_forward": 0, "rows_rechecked": 0, "forward_passes": 0, "tokens_computed": 0,
            "oom_splits": 0,
        }

    # -- the Scorer interface ---------------------------------------------------------------------
    def score(self, texts: Sequence[str]) -> pa.Table:
        """Score texts; one output row per text, in input order (columns: SCORE_SCHEMA [+ top_tokens])."""
        enc = self.prompt.encode(texts)
        label_lp, top_ids, top_lp = self._run(enc.ids, full=False)
        top = self._top_tokens(top_ids, top_lp) if self.top_k else None
        return score_table(label_lp, self.labels, enc.truncated, [len(i) for i in enc.ids], top_tokens=top)

    def explain(self, text: str, top_k: int = 10) -> Explanation:
        return explain_first_token(self, text, top_k)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model": self.loaded.reference,
            "device": self.loaded.device,
            "dtype": self.loaded.dtype,
            "precision": self.precision,
            "token_budget": self.token_budget,
            "version_parts": self.version_parts,
        }

    # -- engine extras -----------------------------------------------------------------------------
    def token_logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """Full-vocabulary first-token log-probabilities, shape (n, vocab), float32. For a few rows (explain)."""
        enc = self.prompt.encode(texts)
        return self._run(enc.ids, full=True)

    def token_text(self, tid: int) -> str:
        """A token id as text (decoded, special tokens kept)."""
        text = self._token_texts.get(tid)
        if text is None:
            text = self.tokenizer.decode([tid], skip_special_tokens=False)
            self._token_texts[tid] = text
        return text

    # -- rows to forward passes --------------------------------------------------------------------
    def _pick_pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def _run(self, ids: list[list[int]], full: bool):
        n = len(ids)
        K = len(self.labels)
        label_lp = np.empty((n, K), dtype=np.float64)
        k = min(self.top_k, self.model.config.get_text_config().vocab_size) if not full else 0
        top_ids = np.empty((n, k), dtype=np.int32)
        top_lp = np.empty((n, k), dtype=np.float64)
        full_lp: list = [None]

        def keep(batch: list[int], lp) -> None:  # lp: (B, V) float32 log-softmax
            import torch

            if full:
                if full_lp[0] is None:
                    full_lp[0] = np.empty((n, lp.shape[1]), dtype=np.float32)
                full_lp[0][batch] = lp.cpu().numpy()
                return
            label_lp[batch] = self._label_logprobs(lp)
            if k:
                values, indices = torch.topk(lp, k, dim=-1)
                top_lp[batch] = values.double().cpu().numpy()
                top_ids[batch] = indices.cpu().numpy().astype(np.int32)

        self.stats["rows"] += n
        self._forward_rows(ids, list(range(n)), keep, exact=not self._fast_matmul)
        if full:
            return full_lp[0] if full_lp[0] is not None else np.empty((0, 0), dtype=np.float32)
        if self._fast_matmul and self.recheck_margin > 0 and n and K > 1:
            # Close calls get the exact float32 answer: bfloat16 matmuls move the gap between
            # the top two labels by up to ~0.07 nats (measured on SST-2 with the demo model).
            ordered = np.sort(label_lp, axis=1)
            close = np.flatnonzero(ordered[:, -1] - ordered[:, -2] < self.recheck_margin).tolist()
            if close:
                self.stats["rows_rechecked"] += len(close)
                self._forward_rows(ids, close, keep, exact=True)
        return label_lp, top_ids, top_lp

    def _forward_rows(self, ids: list[list[int]], rows: list[int], keep: Callable, *, exact: bool) -> None:
        """Run `rows` in token-budget batches (shared prefix reused where it applies); keep(batch, lp) each."""
        cached = [r for r in rows if self.prefix.covers(ids[r])]
        if cached:
            before = self.prefix.tokens_computed
            if not self.prefix.ensure(exact, self._forward_context):
                cached = []
            self.stats["tokens_computed"] += self.prefix.tokens_computed - before
        in_cache = set(cached)
        uncached = [r for r in rows if r not in in_cache]
        self.stats["rows_full_forward"] += len(uncached)
        for part, past in ((cached, len(self.prefix)), (uncached, 0)):
            lengths = {r: len(ids[r]) - past for r in part}
            for batch in token_budget_batches(lengths, part, self.token_budget):
                keep(batch, self._forward_split([ids[r][past:] for r in batch], past, exact))

    def _label_logprobs(self, lp) -> np.ndarray:
        import torch

        cols = [torch.logsumexp(lp.index_select(1, idx).double(), dim=1) for idx in self._label_index]
        return torch.stack(cols, dim=1).cpu().numpy()

    # -- forward passes ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _forward_context(self, exact: bool) -> Iterator[None]:
        """Around every forward: the process-wide forward lock, inference mode, and the precision
        (exact float32, or bfloat16 linear matmuls; see `precision`)."""
        import torch

        with FORWARD_LOCK, torch.inference_mode():
            if exact or not self._fast_matmul:
                yield
            else:
                with bf16_linear_matmuls(self.model):
                    yield

    def _forward_split(self, seqs: list[list[int]], past: int, exact: bool):
        """Forward with out-of-memory split-and-retry."""
        import torch

        try:
            return self._forward(seqs, past, exact)
        except _oom_errors():
            if len(seqs) == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(seqs) // 2
            width = max(len(s) for s in seqs)
            self.token_budget = max(1, min(self.token_budget, half * width))
            self.stats["oom_splits"] += 1
            log.warning("out of memory on a batch of %d rows; splitting it and lowering the token budget to %d",
                        len(seqs), self.token_budget)
            return torch.cat([self._forward_split(seqs[:half], past, exact), self._forward_split(seqs[half:], past, exact)])

    def _forward(self, seqs: list[list[int]], past: int, exact: bool = True):
        """Log-softmax (float32) of the next-token logits after each sequence, shape (B, vocab)."""
        import torch

        kwargs = model_inputs(seqs, past, self._pad_id, self.device, self.prefix, exact)
        with self._forward_context(exact):
            logits = self.model(**kwargs).logits[:, -1, :]
            lp = torch.log_softmax(logits.float(), dim=-1)
        self.stats["forward_passes"] += 1
        self.stats["tokens_computed"] += int(sum(len(s) for s in seqs))
        return lp

    # -- output ------------------------------------------------------------------------------------
    def _top_tokens(self, top_ids: np.ndarray, top_lp: np.ndarray) -> pa.Array:
        n, k = top_ids.shape
        flat_ids = top_ids.reshape(-1)
        structs = pa.StructArray.from_arrays(
            [
                pa.array([self.token_text(int(t)) for t in flat_ids], pa.string()),
                pa.array(flat_ids, pa.int32()),
                pa.array(top_lp.reshape(-1), pa.float64()),
            ],
            fields=list(TOP_TOKEN_TYPE),
        )
        return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), structs)
