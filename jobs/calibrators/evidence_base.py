"""The evidence base in the warehouse: every labeled row's out-of-fold prediction per recipe, kept current.

    evidence = current_evidence(spec, rows, recipes)        # reuses what is stored when the labels did not change
    with writer(path) as con: write_evidence(con, spec, rows, evidence, run_id, floor)

A recipe's stored predictions are current when the fingerprint of what they were computed from (rows,
labels, weights, folds: `calibration_store.evidence.labels_fingerprint`) is unchanged; then a
recalibration reads them instead of fitting K maps again. Each prediction is stored with its argmax, its
confidence and the bucket it would get, which is what the analyst views compare a label with
(`predictions_current.evidence_*`).

What judges a calibrator on a label (`load_judged_labels`: the report's headline, `status`, snapshots) is
never a map that saw the row: the calibrator's own prediction where it was not fitted on the row, its
recipe's out-of-fold prediction where it was.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from calscore.calibration_store.apply import logprob_matrix
from calscore.calibration_store.combined import calibrator_input
from calscore.calibration_store.document import load_document, recipe_of
from calscore.calibration_store.evidence import FOLD_SEED, OutOfFold, labels_fingerprint, out_of_fold, stable_folds
from calscore.calibration_store.metrics import raw_probs
from calscore.jobs.calibrators.labeled_rows import CERTIFYING_DESIGNS, LabeledRows, label_indices
from calscore.jobs.common.clock import utcnow
from calscore.jobs.decisions import agreement_signal, assign_buckets
from calscore.jobs.spec import TaskSpec
from calscore.jobs.warehouse.connection import reader
from calscore.jobs.warehouse.statements import statement


@dataclass(frozen=True)
class CurrentEvidence:
    """An evidence base for some labeled rows, and which recipes in it were computed now (to be stored)."""

    base: OutOfFold
    fingerprints: dict[str, str]
    fresh: tuple[str, ...]


def current_evidence(spec: TaskSpec, rows: LabeledRows, recipes: Sequence[str]) -> CurrentEvidence:
    """Out-of-fold predictions of each recipe on `rows`: read from the warehouse where the stored ones were
    computed from these very labels, cross-fitted (K fits per recipe) otherwise."""
    folds = spec.calibration.folds
    fold = stable_folds(spec.name, rows.row_ids.tolist(), folds, FOLD_SEED)
    prints = {r: labels_fingerprint(r, spec.label_names, rows.row_ids.tolist(), rows.y, rows.weights, fold)
              for r in recipes}
    stored = _stored_sets(spec, prints)
    fresh = [r for r in recipes if r not in stored]
    computed = out_of_fold(fresh, spec.label_names, rows.logprobs, rows.y, rows.weights, fold, folds, FOLD_SEED,
                           rows.agreement)
    probs, skipped = dict(computed.probs), dict(computed.skipped)
    kept = [r for r in stored if stored[r] is None]
    skipped.update({r: reason for r, reason in stored.items() if reason is not None})
    probs.update(_stored_probs(spec, kept, rows.row_ids))
    base = OutOfFold(fold=fold, folds=folds, seed=FOLD_SEED, probs={r: probs[r] for r in recipes if r in probs},
                     skipped=skipped)
    return CurrentEvidence(base=base, fingerprints=prints, fresh=tuple(fresh))


def _stored_sets(spec: TaskSpec, prints: dict[str, str]) -> dict[str, str | None]:
    """The recipes whose stored evidence has the wanted fingerprint -> None, or the reason it was skipped."""
    with reader(spec.warehouse.path) as con:
        found = con.execute(
            "SELECT recipe, fingerprint, skipped FROM evidence_sets WHERE task_version = ?", [spec.task_version]
        ).fetchall()
    return {recipe: skipped for recipe, fingerprint, skipped in found if prints.get(recipe) == fingerprint}


def _stored_probs(spec: TaskSpec, recipes: list[str], row_ids: np.ndarray) -> dict[str, np.ndarray]:
    if not recipes:
        return {}
    wanted = pa.array(row_ids.tolist(), pa.string())
    out = {}
    with reader(spec.warehouse.path) as con:
        for recipe in recipes:
            table = con.sql("SELECT row_id, probs FROM evidence WHERE task_version = ? AND recipe = ?",
                            params=[spec.task_version, recipe]).to_arrow_table()
            at = pc.index_in(table["row_id"], value_set=wanted).to_numpy()  # the rows' positions, columnar
            probs = np.empty((len(row_ids), len(spec.label_names)))
            probs[at] = table["probs"].combine_chunks().flatten().to_numpy().reshape(-1, len(spec.label_names))
            out[recipe] = probs
    return out


def write_evidence(con, spec: TaskSpec, rows: LabeledRows, evidence: CurrentEvidence, run_id: str,
                   floor: float, rewrite: Sequence[str] = ()) -> None:
    """Replace the stored evidence of the freshly computed recipes, and of the `rewrite` ones (a champion's recipe
    whose coverage floor changed), in the caller's transaction; buckets under `floor`, the floor in effect."""
    base = evidence.base
    for recipe in dict.fromkeys([*evidence.fresh, *(r for r in rewrite if r in base.probs)]):
        con.execute("DELETE FROM evidence WHERE task_version = ? AND recipe = ?", [spec.task_version, recipe])
        if recipe in base.probs:
            con.register("evidence_rows", _evidence_table(spec, rows, base, recipe, floor))
            con.execute(statement("evidence_insert"))
            con.unregister("evidence_rows")
        con.execute(statement("evidence_sets_upsert"), {
            "task_version": spec.task_version, "recipe": recipe, "fingerprint": evidence.fingerprints[recipe],
            "n_rows": len(rows), "folds": base.folds, "fold_seed": base.seed, "skipped": base.skipped.get(recipe),
            "computed_at": utcnow(), "run_id": run_id})


def _evidence_table(spec: TaskSpec, rows: LabeledRows, base: OutOfFold, recipe: str, floor: float) -> pa.Table:
    probs = base.probs[recipe]
    best = np.argmax(probs, axis=1)
    confidence = probs[np.arange(probs.shape[0]), best]
    bucket, reason = assign_buckets(confidence, rows.coverage, spec.buckets, floor)
    k = len(spec.label_names)
    return pa.table({
        "task_version": pa.array([spec.task_version] * len(rows), pa.string()),
        "recipe": pa.array([recipe] * len(rows), pa.string()),
        "row_id": pa.array(rows.row_ids.tolist(), pa.string()),
        "fold": pa.array(base.fold, pa.int32()),
        "probs": pa.ListArray.from_arrays(pa.array(np.arange(len(rows) + 1) * k, pa.int32()),
                                          pa.array(probs.reshape(-1), pa.float64())),
        "label": pa.array(np.array(spec.label_names, dtype=object)[best], pa.string()),
        "confidence": pa.array(confidence, pa.float64()),
        "bucket": pa.array(bucket, pa.string()),
        "bucket_reason": pa.array(reason, pa.string()),
    })


BASES = ("held_out", "out_of_fold")


@dataclass(frozen=True)
class JudgedLabels:
    """Current labels with the probabilities that judge a calibrator on them (`load_judged_labels`)."""

    row_id: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    design: np.ndarray
    segment: np.ndarray
    basis: np.ndarray  # per row: 'held_out' (the calibrator never saw it) or 'out_of_fold' (its recipe's)
    logprobs: np.ndarray  # (n, K) stored label log-probabilities
    raw: np.ndarray  # (n, K) raw label shares
    calibrated: np.ndarray | None  # (n, K); None when there is no calibrator

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, mask: np.ndarray) -> "JudgedLabels":
        return JudgedLabels(**{k: None if v is None else v[mask] for k, v in self.__dict__.items()})

    def counts(self, field: str) -> dict[str, int]:
        """Rows per value of `basis` or `design`, in a stable order."""
        values = getattr(self, field).tolist()
        return {v: values.count(v) for v in sorted(set(values))}


def load_judged_labels(con, spec: TaskSpec, document: dict | None, night=None) -> JudgedLabels:
    """The task's current labels (of `night`, or all) with the raw probabilities and those of the calibrator
    `document` (None: raw only), each row judged by a map that never saw it (module docstring)."""
    version = None if document is None else document["version"]
    table = con.sql(statement("labels_judged_for_calibrator"), params={
        "task_name": spec.name, "task_version": spec.task_version, "calibrator_version": version,
        "recipe": None if document is None else recipe_of(document), "night": night,
    }).to_arrow_table()
    labels = spec.label_names
    logprobs = logprob_matrix(table["label_logprobs"], labels).reshape(table.num_rows, len(labels))
    basis = table["basis"].to_numpy(zero_copy_only=False)
    calibrated = None
    if document is not None:
        cal = load_document(document, spec.task_version)
        held = basis == "held_out"
        calibrated = np.empty_like(logprobs)
        agreement = agreement_signal(spec, table)
        if held.any():
            calibrated[held] = cal.predict_proba(calibrator_input(cal, logprobs[held],
                                                                  None if agreement is None else agreement[held]))
        oof = table["out_of_fold_probs"].filter(pa.array(~held)).combine_chunks().flatten()
        calibrated[~held] = oof.to_numpy(zero_copy_only=False).reshape(-1, len(labels))
    return JudgedLabels(
        row_id=table["row_id"].to_numpy(zero_copy_only=False),
        y=label_indices(table["true_label"], labels),
        weight=table["label_weight"].to_numpy(),
        design=table["label_design"].to_numpy(zero_copy_only=False),
        segment=table["segment"].to_numpy(zero_copy_only=False),
        basis=basis,
        logprobs=logprobs,
        raw=raw_probs(logprobs) if len(logprobs) else np.empty((0, len(labels))),
        calibrated=calibrated,
    )


def headline_labels(judged: JudgedLabels) -> tuple[JudgedLabels, str]:
    """The labels a headline figure rests on, and a sentence saying which: the sampling-design labels (audit,
    random) when there are any -- convenience labels are not a sample of the predictions, so they are left out
    and counted -- else the convenience labels, with a warning."""
    sample = np.isin(judged.design, CERTIFYING_DESIGNS)
    n_convenience = int((~sample).sum())
    if sample.any():
        left_out = (f"; {n_convenience} convenience label(s) left out, not being a sample of the predictions"
                    if n_convenience else "")
        return judged.take(sample), f"audit and random-sample labels{left_out}"
    if n_convenience:
        return judged, (f"WARNING: only convenience labels ({n_convenience}), not a sample of the predictions: "
                        "these figures may not hold for all rows (import a random sample with --design random)")
    return judged, "no labels"


def basis_text(judged: JudgedLabels, recipe: str | None) -> str:
    """What the calibrated figures rest on: `480 out-of-fold (platt fitted on the other folds), 120 held out`."""
    counts = judged.counts("basis")
    parts = []
    if counts.get("out_of_fold"):
        parts.append(f"{counts['out_of_fold']} out-of-fold (the champion's recipe, {recipe}, fitted on the other folds)")
    if counts.get("held_out"):
        parts.append(f"{counts['held_out']} never seen by the calibrator")
    return ", ".join(parts) or "no labels"
