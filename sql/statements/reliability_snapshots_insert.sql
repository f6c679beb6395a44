-- Record a calibrator's figures on labels it was judged on without seeing them, for raw or calibrated scores and one segment.
insert into reliability_snapshots (
    snapshot_id, task_name, task_version, calibrator_version, run_id, scores, segment,
    n, accuracy, ece, ece_equal_mass, ece_ci_low, ece_ci_high, mce, smece, smece_ci_low, smece_ci_high,
    debiased_ece, nll, brier, bins, n_held_out, n_out_of_fold, label_designs,
    diagram_path, created_at
)
values (
    $snapshot_id, $task_name, $task_version, $calibrator_version, $run_id, $scores, $segment,
    $n, $accuracy, $ece, $ece_equal_mass, $ece_ci_low, $ece_ci_high, $mce, $smece, $smece_ci_low, $smece_ci_high,
    $debiased_ece, $nll, $brier, $bins, $n_held_out, $n_out_of_fold, $label_designs,
    $diagram_path, $created_at
)
