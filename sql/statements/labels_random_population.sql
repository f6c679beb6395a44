-- A simple random sample (design 'random') of the task_version's scored rows: the population's size and how
-- many of the incoming labels (registered as `incoming`) are its rows; each is in with probability sampled / population.
select
    count(*) as population,
    count(i.row_id) as sampled
from predictions p
left join incoming i
    on i.row_id = p.row_id
where p.task_version = $task_version
