-- Is each night healthy: coverage, off-format share, raw-score shift, quarantine, bucket accuracy against its promise?
with checks as (
    select * from health_checks
),

newest as (
    select
        *,
        row_number() over (partition by task_name, night, check_name order by created_at desc) as rank_in_night
    from checks
),

final as (
    select
        task_name,
        task_version,
        night,
        check_name,
        value,
        reference,
        threshold,
        status,
        detail,
        reference_rows,
        run_id,
        created_at
    from newest
    where rank_in_night = 1
)

select * from final
