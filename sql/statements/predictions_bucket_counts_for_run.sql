-- How many rows a run wrote to each bucket.
select bucket, count(*)
from predictions
where run_id = $run_id
group by bucket
