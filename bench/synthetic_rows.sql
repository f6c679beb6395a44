-- The rows of a synthetic warehouse, grown by SQL from the demo's shape: `rows` predictions over `nights`
-- nights of four segments; the model is over-confident (log-odds x 2.2) and leans positive, much harder in
-- the `neutral` segment; 5% of rows answer off-format; a `labeled_share` audit sample carries labels. Every
-- draw is a seeded hash of the row number, so a size is the same warehouse on every run.
-- Settings (DuckDB variables): seed, rows, nights, labeled_share.
create or replace temp view synthetic_rows as
with draws as (

    select
        i,
        i * getvariable('nights') // getvariable('rows') as night_index,
        -- uniform in [0, 1): a 64-bit hash of one integer per row and draw, over 2^64 (hash(a, b) of several
        -- arguments would give correlated draws)
        hash(getvariable('seed') * 1099511627776 + i * 16 + 1) / 18446744073709551616.0 as u_segment,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 2) / 18446744073709551616.0 as u_truth,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 3) / 18446744073709551616.0 as u_label,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 4) / 18446744073709551616.0 as u_coverage,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 5) / 18446744073709551616.0 as u_off_format,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 6) / 18446744073709551616.0 as u_audit,
        hash(getvariable('seed') * 1099511627776 + i * 16 + 7) as id_hash

    from range(getvariable('rows')) as r(i)

),

segmented as (

    select
        *,
        case
            when u_segment < 0.3 then 'strong'
            when u_segment < 0.6 then 'medium'
            when u_segment < 0.8 then 'weak'
            else 'neutral'
        end as segment

    from draws

),

truth as (

    select
        *,
        -- true log-odds of `positive`, wider for clearer segments
        (2 * u_truth - 1) * case segment when 'strong' then 6 when 'medium' then 3 when 'weak' then 1.5 else 1 end
            as true_log_odds,
        case when u_off_format < 0.05 then 0.2 + 0.25 * u_coverage else 0.55 + 0.44 * u_coverage end as coverage

    from segmented

),

final as (

    select
        i,
        night_index,
        segment,
        coverage,
        u_audit < getvariable('labeled_share') as audited,
        case when u_label < 1 / (1 + exp(-true_log_odds)) then 'positive' else 'negative' end as true_label,
        2.2 * true_log_odds + case when segment = 'neutral' then 1.6 else 0.4 end as model_log_odds,
        -- unique, in no particular order (as a batch's ids are)
        printf('%08x-%d', id_hash % 4294967296, i) as row_id,
        timestamptz '2025-03-01 22:00:00+00' + to_days(cast(night_index as integer)) + to_seconds(i % 3600)
            as scored_at,
        ['The match went to extra time and the crowd stayed on their feet until the final whistle',
         'The quarterly report was filed on time, reviewed by the team and sent to the regional office',
         'A warm, funny and beautifully acted film that stays with you long after the credits roll',
         'The plot drags, the jokes fall flat and the ending makes no sense at all',
         'The new office opens on Monday with the same desks, the same printers and a longer commute',
         'I smiled from the first scene to the last; a real delight for the whole family',
         'A tedious, joyless mess that wastes a talented cast and two hours of everyone''s evening',
         'The season opener was played in light rain in front of a half-full stadium']
            [1 + cast(id_hash % 8 as integer)] || ' (' || i || ')' as text

    from truth

)

select * from final
