"""First-token scoring: label log-probabilities from one forward pass per batch.

    scorer = FirstTokenScorer(load_model(spec.model), spec)
    table = scorer.score(["a text", ...])          # pyarrow.Table, one row per text, input order

For each row, the model's next-token distribution after the prompt is taken
at the last prompt position only (`logits_to_keep=1`: never batch x sequence x
vocabulary logits), log-softmaxed over the full vocabulary in float32, and each
label's log-probability is the log-sum-exp over its verbalizer token ids.

Throughput: rows are sorted by length and packed into batches by a token budget
(padded tokens, not a row count). The prompt part every row shares (instruction,
few-shot examples, chat preamble) is run once and its key/value cache reused for
every batch: it is the longest common prefix of the rows' *token ids* (found with
probe texts, checked per row), never a separately tokenized prefix string, whose
BPE merges at the boundary can differ. Rows that do not start with it get a full
forward. Suffixes are left-padded, with explicit position ids and an attention
mask covering prefix + suffix. When a batch runs out of (GPU) memory it is split
in halves and retried, and later batches use a smaller budget.

Precision: float32 on CPU by default (matches per-row `generate` to ~1e-5).
The opt-in bfloat16 mode on CPU (`load_model(..., dtype_override="bfloat16")`)
keeps float32 weights and runs only the linear layers' matmuls in bfloat16; rows
whose top two labels are closer than `recheck_margin` nats are then re-scored in
float32, so close calls get the float32 label. On CUDA the model itself is
bfloat16 (the loader's default there).

Output columns (see SCORE_SCHEMA): label_logprobs (K values, label order),
coverage (total probability on all label tokens), raw_label, raw_confidence
(predicted label's share of the label mass), total_probability (predicted
label's unnormalised mass), truncated, n_tokens, and top_tokens when top_k > 0.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from calscore.jobs.scoring.model_loading import LoadedModel
from calscore.jobs.scoring.prompting import PromptBuilder
from calscore.jobs.spec import TaskSpec
from calscore.jobs.scoring.verbalizers import Verbalizers, resolve_verbalizers

log = logging.getLogger(__name__)

TOP_TOKEN_TYPE = pa.struct([("token", pa.string()), ("token_id", pa.int32()), ("logprob", pa.float64())])
SCORE_FIELDS = [
    pa.field("label_logprobs", pa.list_(pa.float64())),
    pa.field("coverage", pa.float64()),
    pa.field("raw_label", pa.string()),
    pa.field("raw_confidence", pa.float64()),
    pa.field("total_probability", pa.float64()),
    pa.field("truncated", pa.bool_()),
    pa.field("n_tokens", pa.int32()),
]
TOP_TOKENS_FIELD = pa.field("top_tokens", pa.list_(TOP_TOKEN_TYPE))
SCORE_SCHEMA = pa.schema(SCORE_FIELDS)

# Padded tokens per forward pass. On a 2-core CPU with the 135M demo model, 512
# was fastest (float32: 28-30 rows/s at 512 and 1024, 24-27 at 2048, 24 at 4096;
# bfloat16 likewise): the activations of a batch stay in cache, and the many
# memory-bound elementwise ops of a layer dominate once the matmuls are fast.
DEFAULT_CPU_TOKEN_BUDGET = 512
DEFAULT_CUDA_TOKEN_BUDGET = 32768
_FORCE_GQA = "TRANSFORMERS_SDPA_FORCE_GQA"


def _oom_errors() -> tuple[type[BaseException], ...]:
    import torch

    errors = [torch.cuda.OutOfMemoryError]
    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(set(errors))


class FirstTokenScorer:
    """Scores texts for one task with one loaded model. Not thread-safe; one per process."""

    def __init__(
        self,
        loaded: LoadedModel,
        spec: TaskSpec,
        *,
        token_budget: int | None = None,
        top_k: int = 0,
        prefix_reuse: bool = True,
        window_rows: int = 4096,
        recheck_margin: float = 0.15,
    ):
        import torch

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.spec = spec
        self.device = torch.device(loaded.device)
        self.top_k = int(top_k)
        self.window_rows = int(window_rows)
        if token_budget is None:
            token_budget = DEFAULT_CUDA_TOKEN_BUDGET if self.device.type == "cuda" else DEFAULT_CPU_TOKEN_BUDGET
        if token_budget < 1:
            raise ValueError("token_budget must be positive")
        self.token_budget = int(token_budget)
        self.prompt = PromptBuilder(self.tokenizer, spec.prompt)
        self.verbalizers: Verbalizers = resolve_verbalizers(self.prompt, spec.labels)
        self.labels: list[str] = list(self.verbalizers.labels)
        self.verbalizer_report: list[dict] = self.verbalizers.report()
        self._pad_id = self._pick_pad_id()
        self._label_index = [torch.tensor(ids, dtype=torch.long, device=self.device) for ids in self.verbalizers.token_ids]
        self._token_texts: dict[int, str] = {}
        self._cpu_gqa = (
            self.device.type == "cpu"
            and getattr(self.model.config, "_attn_implementation", None) == "sdpa"
            and tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)
        )
        self.prefix_ids: list[int] = list(self.prompt.shared_prefix_ids) if prefix_reuse else []
        self._prefix_kv: dict[bool, list[tuple]] = {}  # exact (float32) or fast matmuls -> per-layer (keys, values)
        # bfloat16 on CPU: float32 weights, bfloat16 matmuls (see _precision); close calls re-checked exactly.
        self._fast_matmul = (
            loaded.dtype == "bfloat16"
            and self.device.type == "cpu"
            and next(self.model.parameters()).dtype == torch.float32
        )
        self.recheck_margin = float(recheck_margin)
        self.stats = {
            "rows": 0, "rows_full_forward": 0, "rows_rechecked": 0, "forward_passes": 0, "tokens_computed": 0,
            "oom_splits": 0,
        }

    # -- public API ------------------------------------------------------------------------------
    def score(self, texts: Sequence[str]) -> pa.Table:
        """Score texts; one output row per text, in input order (columns: SCORE_SCHEMA [+ top_tokens])."""
        enc = self.prompt.encode(texts)
        label_lp, top_ids, top_lp = self._run(enc.ids, full=False)
        return self._table(label_lp, top_ids, top_lp, enc.truncated, [len(i) for i in enc.ids])

    def iter_score(
        self,
        record_batches: Iterable[pa.RecordBatch],
        text_column: str,
        *,
        null_text: str = "error",
    ) -> Iterator[pa.Table]:
        """Stream record batches through the scorer: yields the input columns plus the score columns.

        Batches are gathered into windows of about `window_rows` rows (sorted by length inside a
        window), so memory stays flat however long the stream. Null text raises, unless
        `null_text="null"`: then those rows get null scores (the caller should quarantine them).
        """
        if null_text not in ("error", "null"):
            raise ValueError("null_text must be 'error' or 'null'")
        pending: list[pa.RecordBatch] = []
        count = 0
        for batch in record_batches:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            count += batch.num_rows
            if count >= self.window_rows:
                yield self._score_window(pending, text_column, null_text)
                pending, count = [], 0
        if pending:
            yield self._score_window(pending, text_column, null_text)

    def token_logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """Full-vocabulary first-token log-probabilities, shape (n, vocab), float32. For a few rows (explain)."""
        enc = self.prompt.encode(texts)
        return self._run(enc.ids, full=True)

    # -- batching ----------------------------------------------------------------------------------
    def _pick_pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def _batches(self, lengths: Sequence[int], rows: Sequence[int]) -> Iterator[list[int]]:
        """Rows grouped longest first into batches whose padded size fits the token budget."""
        order = sorted(rows, key=lambda r: lengths[r], reverse=True)
        i = 0
        while i < len(order):
            width = lengths[order[i]]
            take = max(1, self.token_budget // max(width, 1))
            yield order[i : i + take]
            i += take

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

    def _forward_rows(self, ids: list[list[int]], rows: list[int], keep, *, exact: bool) -> None:
        """Run `rows` in token-budget batches (shared prefix reused where it applies); keep(batch, lp) each."""
        P = len(self.prefix_ids)
        cached, uncached = [], []
        for r in rows:
            seq = ids[r]
            (cached if P and len(seq) > P and seq[:P] == self.prefix_ids else uncached).append(r)
        if cached and exact not in self._prefix_kv:
            kv = self._compute_prefix(exact)
            if kv is None:  # the model's cache cannot be reused: everything runs in full
                self.prefix_ids, P = [], 0
                cached, uncached = [], list(rows)
            else:
                self._prefix_kv[exact] = kv
        self.stats["rows_full_forward"] += len(uncached)
        for part, past in ((cached, P), (uncached, 0)):
            lengths = {r: len(ids[r]) - past for r in part}
            for batch in self._batches(lengths, part):
                keep(batch, self._forward_split([ids[r][past:] for r in batch], past, exact))

    def _label_logprobs(self, lp) -> np.ndarray:
        import torch

        cols = [torch.logsumexp(lp.index_select(1, idx).double(), dim=1) for idx in self._label_index]
        return torch.stack(cols, dim=1).cpu().numpy()

    # -- forward passes ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _precision(self, exact: bool):
        """Float32 matmuls exactly, or (bfloat16 mode on CPU) in bfloat16 with float32 weights and accumulation.

        Keeping the weights, residual stream and logits in float32 and rounding only the inputs
        of the linear layers to bfloat16 (oneDNN fpmath mode, AMX on recent CPUs) is about as fast
        as a bfloat16 model and moves label log-odds ~3x less than casting the whole model to
        bfloat16 (measured on SST-2: 99.8% vs 96.7% of predicted labels unchanged). The switch is
        global in torch, so it is turned on around each linear layer only (hooks removed after the
        forward): with it on, CPU attention gets ~3x slower. The LM head stays exact.
        """
        import torch

        if exact or not self._fast_matmul:
            yield
            return
        mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul", None)
        if mkldnn_matmul is not None and hasattr(mkldnn_matmul, "fp32_precision"):
            previous = mkldnn_matmul.fp32_precision

            def fast(*_):
                mkldnn_matmul.fp32_precision = "bf16"

            def restore(*_):
                mkldnn_matmul.fp32_precision = previous
        else:  # older torch: the same oneDNN mode behind the float32 matmul precision switch
            previous = torch.get_float32_matmul_precision()

            def fast(*_):
                torch.set_float32_matmul_precision("medium")

            def restore(*_):
                torch.set_float32_matmul_precision(previous)

        head = self.model.get_output_embeddings()
        handles = []
        for module in self.model.modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                handles.append(module.register_forward_pre_hook(fast))
                handles.append(module.register_forward_hook(restore))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            restore()

    def _compute_prefix(self, exact: bool) -> list[tuple] | None:
        import torch

        ids = torch.tensor([self.prefix_ids], dtype=torch.long, device=self.device)
        try:
            with torch.inference_mode(), self._precision(exact):
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            layers = out.past_key_values.layers
            kv = [(layer.keys, layer.values) for layer in layers]
            if any(k is None or k.shape[-2] != len(self.prefix_ids) for k, _ in kv):
                raise ValueError("unexpected cache layout")
        except (AttributeError, ValueError, TypeError) as exc:
            log.warning("prefix KV-cache reuse is not available for this model (%s); running full forwards", exc)
            return None
        self.stats["tokens_computed"] += len(self.prefix_ids)
        return kv

    def _prefix_cache(self, batch_size: int, exact: bool):
        """A fresh cache holding the shared prefix for `batch_size` rows (a forward extends it in place).

        The layers hold broadcast views of the stored prefix, so the only copy is the one the
        forward makes when it appends the suffix keys and values.
        """
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        expanded = [
            (k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self._prefix_kv[exact]
        ]
        cache = DynamicCache(config=self.model.config)
        if len(cache.layers) == len(expanded) and all(type(layer) is DynamicLayer for layer in cache.layers):
            for layer, (k, v) in zip(cache.layers, expanded):
                layer.lazy_initialization(k, v)
                layer.keys, layer.values = k, v
            return cache
        return DynamicCache(expanded, config=self.model.config)

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

    @contextlib.contextmanager
    def _gqa_in_sdpa(self):
        """On CPU, let SDPA read grouped key/value heads directly instead of copying them per query head.

        transformers repeats the key/value heads whenever a mask is given (CUDA kernels need that);
        torch's CPU attention takes `enable_gqa` with a mask, which saves copying the prefix cache
        num_heads / num_kv_heads times per layer (measured: up to 1.8x on short rows, same numbers).
        transformers reads this switch on every attention call; it is restored afterwards.
        """
        if not self._cpu_gqa:
            yield
            return
        previous = os.environ.get(_FORCE_GQA)
        os.environ[_FORCE_GQA] = "1"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(_FORCE_GQA, None)
            else:
                os.environ[_FORCE_GQA] = previous

    def _forward(self, seqs: list[list[int]], past: int, exact: bool = True):
        """Log-softmax (float32) of the next-token logits after each sequence, shape (B, vocab)."""
        import torch

        B = len(seqs)
        L = max(len(s) for s in seqs)
        input_ids = np.full((B, L), self._pad_id, dtype=np.int64)
        mask = np.zeros((B, past + L), dtype=np.int64)
        mask[:, :past] = 1
        positions = np.full((B, L), past, dtype=np.int64)
        for i, s in enumerate(seqs):
            n = len(s)
            input_ids[i, L - n :] = s
            mask[i, past + L - n :] = 1
            positions[i, L - n :] = np.arange(past, past + n)
        kwargs = dict(
            input_ids=torch.from_numpy(input_ids).to(self.device),
            attention_mask=torch.from_numpy(mask).to(self.device),
            position_ids=torch.from_numpy(positions).to(self.device),
            logits_to_keep=1,
        )
        if past:
            kwargs["past_key_values"] = self._prefix_cache(B, exact)
            kwargs["use_cache"] = True
        else:
            kwargs["use_cache"] = False
        with torch.inference_mode(), self._gqa_in_sdpa(), self._precision(exact):
            logits = self.model(**kwargs).logits[:, -1, :]
            lp = torch.log_softmax(logits.float(), dim=-1)
        self.stats["forward_passes"] += 1
        self.stats["tokens_computed"] += int(sum(len(s) for s in seqs))
        return lp

    # -- output ------------------------------------------------------------------------------------
    def token_text(self, tid: int) -> str:
        """A token id as text (decoded, special tokens kept)."""
        text = self._token_texts.get(tid)
        if text is None:
            text = self.tokenizer.decode([tid], skip_special_tokens=False)
            self._token_texts[tid] = text
        return text

    def _table(self, label_lp, top_ids, top_lp, truncated, n_tokens) -> pa.Table:
        n, K = label_lp.shape
        if n:
            total = np.logaddexp.reduce(label_lp, axis=1)
            pred = np.argmax(label_lp, axis=1)
            pred_lp = label_lp[np.arange(n), pred]
        else:
            total = pred_lp = np.empty(0)
            pred = np.empty(0, dtype=np.int64)
        offsets = pa.array(np.arange(0, n * K + 1, K, dtype=np.int32))
        columns = {
            "label_logprobs": pa.ListArray.from_arrays(offsets, pa.array(label_lp.reshape(-1), pa.float64())),
            "coverage": pa.array(np.exp(total), pa.float64()),
            "raw_label": pa.array([self.labels[i] for i in pred], pa.string()),
            "raw_confidence": pa.array(np.exp(pred_lp - total), pa.float64()),
            "total_probability": pa.array(np.exp(pred_lp), pa.float64()),
            "truncated": pa.array(truncated, pa.bool_()),
            "n_tokens": pa.array(n_tokens, pa.int32()),
        }
        fields = list(SCORE_FIELDS)
        if self.top_k:
            k = top_ids.shape[1]
            flat_ids = top_ids.reshape(-1)
            structs = pa.StructArray.from_arrays(
                [
                    pa.array([self.token_text(int(t)) for t in flat_ids], pa.string()),
                    pa.array(flat_ids, pa.int32()),
                    pa.array(top_lp.reshape(-1), pa.float64()),
                ],
                fields=list(TOP_TOKEN_TYPE),
            )
            columns["top_tokens"] = pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), structs)
            fields.append(TOP_TOKENS_FIELD)
        return pa.Table.from_arrays([columns[f.name] for f in fields], schema=pa.schema(fields))

    def _score_window(self, batches: list[pa.RecordBatch], text_column: str, null_text: str) -> pa.Table:
        table = pa.Table.from_batches(batches)
        if text_column not in table.column_names:
            raise KeyError(f"text column {text_column!r} not in the input columns {table.column_names}")
        texts = table.column(text_column).to_pylist()
        present = [i for i, t in enumerate(texts) if t is not None]
        if len(present) < len(texts) and null_text == "error":
            raise ValueError(
                f"{len(texts) - len(present)} row(s) have null text in {text_column!r}; quarantine them before scoring"
            )
        scores = self.score([texts[i] for i in present])
        if len(present) < len(texts):
            # Spread the scored rows back, nulls elsewhere: take() with null indices gives null rows.
            where = np.full(len(texts), -1, dtype=np.int64)
            where[present] = np.arange(len(present))
            indices = pa.array(where, mask=where < 0)
            scores = scores.take(indices)
        clash = set(scores.column_names) & set(table.column_names)
        if clash:
            raise ValueError(f"input columns {sorted(clash)} clash with the score columns; rename them")
        for field in scores.schema:
            table = table.append_column(field, scores.column(field.name))
        return table

