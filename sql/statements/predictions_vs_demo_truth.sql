-- One run's predictions against the demo's hidden labels (registered as `truth`): raw and calibrated correctness.
select
    p.raw_label = t.label as raw_correct,
    p.raw_confidence,
    p.label = t.label as correct,
    p.confidence,
    p.bucket
from predictions p
join truth t on t.id = p.row_id
where p.run_id = $run_id
