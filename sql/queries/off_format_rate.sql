-- What share of each night's rows did the model answer off-format (too little probability on any label)?
with current_decisions as (

    select * from current_decisions

),

final as (

    select
        task_name,
        night,
        count(*) as rows,
        count(*) filter (where bucket_reason = 'off_format') as off_format_rows,
        round(100.0 * count(*) filter (where bucket_reason = 'off_format') / count(*), 2) as pct_off_format,
        round(avg(coverage), 3) as mean_coverage

    from current_decisions
    group by all

)

select * from final
order by task_name, night desc
