"""The score schema: what every scorer returns for each text.

| column | type | meaning |
| --- | --- | --- |
| `label_logprobs` | list<double> | one finite log-probability per label, in the task's label order |
| `unobserved_labels` | list<string> | labels whose mass the backend did not report (empty for full-vocabulary backends) |
| `coverage` | double | total probability on any label token |
| `coverage_is_lower_bound` | bool | true when the backend saw only part of the distribution |
| `raw_label` | string | the label with the largest log-probability |
| `raw_confidence` | double | that label's share of the label mass |
| `total_probability` | double | that label's unnormalised mass |
| `truncated` | bool | the text was cut to fit `max_input_tokens` |
| `n_tokens` | int32 | prompt tokens (null when the backend cannot count them) |
| `agreement` | list<double> | sampling backends: each label's share of the sampled answers, in label order (null otherwise) |
| `samples` | int32 | sampling backends: the answers sampled for the row (null otherwise) |
| `error` | string | why the backend could not score this row (its score columns are then null; null otherwise) |
| `top_tokens` | list<struct<token, token_id, logprob>> | optional: the top first tokens |

**Partial distributions.** A backend that returns only the top-k first tokens (an
HTTP endpoint) cannot know the mass of a label none of whose tokens made the list.
Such a row is never given `-inf` (no calibrator can use it): the label's value is
imputed by `impute_unobserved` -- the unreported remainder shared among the missing
labels, capped at the smallest reported probability (an unlisted token is no more
likely than the last listed one) -- the label is named in `unobserved_labels`, and
`coverage` (then a lower bound) counts only what was observed. Calibrators take the
imputed value like any other; analysts can filter on `unobserved_labels`.

**Row errors.** A backend that calls a service can fail for one row and not the
others (a request the endpoint rejects). It returns that row with its score columns
null and the reason in `error` (`with_row_errors`); the batch scoring quarantines it
(reason `endpoint_error`) and scores the rest.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

TOP_TOKEN_TYPE = pa.struct([("token", pa.string()), ("token_id", pa.int32()), ("logprob", pa.float64())])
SCORE_FIELDS = [
    pa.field("label_logprobs", pa.list_(pa.float64())),
    pa.field("unobserved_labels", pa.list_(pa.string())),
    pa.field("coverage", pa.float64()),
    pa.field("coverage_is_lower_bound", pa.bool_()),
    pa.field("raw_label", pa.string()),
    pa.field("raw_confidence", pa.float64()),
    pa.field("total_probability", pa.float64()),
    pa.field("truncated", pa.bool_()),
    pa.field("n_tokens", pa.int32()),
    pa.field("agreement", pa.list_(pa.float64())),
    pa.field("samples", pa.int32()),
    pa.field("error", pa.string()),
]
TOP_TOKENS_FIELD = pa.field("top_tokens", pa.list_(TOP_TOKEN_TYPE))
SCORE_SCHEMA = pa.schema(SCORE_FIELDS)
# The floor of an imputed probability: finite, and far below anything a model reports.
MIN_IMPUTED_PROBABILITY = 1e-30


def _fixed_lists(values: np.ndarray, width: int, type_: pa.DataType) -> pa.Array:
    n = values.shape[0] // width if width else 0
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values, type_))


def score_table(
    label_logprobs: np.ndarray,
    labels: Sequence[str],
    truncated: Sequence[bool],
    n_tokens: Sequence[int | None],
    *,
    unobserved: np.ndarray | None = None,
    top_tokens: pa.Array | None = None,
    agreement: np.ndarray | None = None,
    samples: Sequence[int] | None = None,
) -> pa.Table:
    """Assemble a score table from (n, K) label log-probabilities.

    `unobserved` is an (n, K) boolean mask of labels whose value was imputed (see the
    module docstring); coverage then counts only the observed labels and is a lower bound.
    `agreement` (n, K) and `samples` (n,) come from sampling backends.
    """
    lp = np.asarray(label_logprobs, dtype=np.float64)
    n, k = lp.shape
    if not np.isfinite(lp).all():
        raise ValueError("label log-probabilities must be finite; impute unobserved labels with impute_unobserved")
    missing = np.zeros((n, k), dtype=bool) if unobserved is None else np.asarray(unobserved, dtype=bool)
    names = np.asarray(labels, dtype=object)
    if n:
        total = np.logaddexp.reduce(lp, axis=1)
        observed_lp = np.where(missing, -np.inf, lp)
        coverage = np.exp(np.logaddexp.reduce(observed_lp, axis=1))
        pred = np.argmax(lp, axis=1)
        pred_lp = lp[np.arange(n), pred]
    else:
        total = coverage = pred_lp = np.empty(0)
        pred = np.empty(0, dtype=np.int64)
    columns = {
        "label_logprobs": _fixed_lists(lp.reshape(-1), k, pa.float64()),
        "unobserved_labels": pa.array([list(names[row]) for row in missing], pa.list_(pa.string())),
        "coverage": pa.array(coverage, pa.float64()),
        "coverage_is_lower_bound": pa.array(missing.any(axis=1), pa.bool_()),
        "raw_label": pa.array(names[pred] if n else [], pa.string()),
        "raw_confidence": pa.array(np.exp(pred_lp - total), pa.float64()),
        "total_probability": pa.array(np.exp(pred_lp), pa.float64()),
        "truncated": pa.array(truncated, pa.bool_()),
        "n_tokens": pa.array(n_tokens, pa.int32()),
        "agreement": (pa.nulls(n, pa.list_(pa.float64())) if agreement is None
                      else _fixed_lists(np.asarray(agreement, dtype=np.float64).reshape(-1), k, pa.float64())),
        "samples": pa.nulls(n, pa.int32()) if samples is None else pa.array(samples, pa.int32()),
        "error": pa.nulls(n, pa.string()),
    }
    fields = list(SCORE_FIELDS)
    if top_tokens is not None:
        columns["top_tokens"] = top_tokens
        fields.append(TOP_TOKENS_FIELD)
    return pa.Table.from_arrays([columns[f.name] for f in fields], schema=pa.schema(fields))


def impute_unobserved(observed_mass: np.ndarray, smallest_reported: np.ndarray, reported_total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) label log-probabilities and the unobserved mask, from what a top-k list reported.

    `observed_mass` (n, K) holds each label's summed probability over its listed tokens, NaN
    where none of its tokens was listed; `smallest_reported` (n,) is the last listed token's
    probability and `reported_total` (n,) the mass of the whole list. A missing label gets
    min(smallest_reported, (1 - reported_total) / missing labels in the row), floored at
    MIN_IMPUTED_PROBABILITY, so the row's label mass never exceeds 1.
    """
    mass = np.asarray(observed_mass, dtype=np.float64)
    missing = np.isnan(mass)
    share = np.clip(1.0 - np.asarray(reported_total, dtype=np.float64), 0.0, 1.0) / np.maximum(missing.sum(axis=1), 1)
    guess = np.minimum(np.asarray(smallest_reported, dtype=np.float64), share)[:, None]
    filled = np.where(missing, np.broadcast_to(guess, mass.shape), mass)
    return np.log(np.maximum(filled, MIN_IMPUTED_PROBABILITY)), missing


def with_row_errors(scored: pa.Table, errors: Sequence[str | None]) -> pa.Table:
    """Spread the rows of `scored` (one per None in `errors`, in order) over len(errors) rows;
    a row with an error message gets null score columns and the message in `error`."""
    failed = np.array([e is not None for e in errors], dtype=bool)
    if scored.num_rows != int((~failed).sum()):
        raise ValueError(f"{scored.num_rows} scored rows for {int((~failed).sum())} rows without an error")
    where = np.full(len(errors), -1, dtype=np.int64)
    where[~failed] = np.arange(scored.num_rows)
    # take() with null indices gives all-null rows
    spread = scored.take(pa.array(where, mask=failed))
    return spread.set_column(spread.schema.get_field_index("error"), "error", pa.array(errors, pa.string()))
