-- Record what a recipe's stored out-of-fold predictions were computed from (one row per task_version and recipe).
insert into evidence_sets (task_version, recipe, fingerprint, n_rows, folds, fold_seed, skipped, computed_at, run_id)
values ($task_version, $recipe, $fingerprint, $n_rows, $folds, $fold_seed, $skipped, $computed_at, $run_id)
on conflict (task_version, recipe) do update set
    fingerprint = excluded.fingerprint,
    n_rows = excluded.n_rows,
    folds = excluded.folds,
    fold_seed = excluded.fold_seed,
    skipped = excluded.skipped,
    computed_at = excluded.computed_at,
    run_id = excluded.run_id
