-- Remember the rows (registered as `fit_rows`) a stored calibrator was fitted on; rows already recorded stay.
insert into calibrator_fit_rows (version, row_id)
select version, row_id
from fit_rows
on conflict do nothing
