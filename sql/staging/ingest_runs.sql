-- one row per committed (measurement, window): rows and rejects written, run and duration;
-- window_start <= time < window_end, all timestamps UTC
with source as (
    select * from {{ state_records('windows') }}
),

final as (
    select
        measurement,
        window_start,
        window_end,
        rows,
        rejects,
        run_id,
        seconds,
        committed_at
    from source
)

select * from final
