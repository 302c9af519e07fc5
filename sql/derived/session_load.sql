-- per session and 15-minute UTC interval of its samples: each sample's power held for its
-- capped duration, split exactly at the interval's end (the part that spills into the next
-- interval is kept apart: evse_load_15min moves it there)
with samples as (
    select
        evse_address,
        session_start,
        acc_id,
        phases,
        time,
        duration_s,
        coalesce(power_kw, 0) as power_kw,
        charging,
        time_bucket(interval 15 minute, time) as interval_start
    from {{ ref('session_samples') }}
    where duration_s > 0
),

parts as (
    -- durations are capped at 3 sample periods: for periods up to 5 minutes that is at most
    -- one boundary; anything beyond the next interval is not counted
    select
        *,
        least(duration_s, epoch(interval_start + interval 15 minute - time)) as own_s,
        least(duration_s - least(duration_s, epoch(interval_start + interval 15 minute - time)), 900)
            as spill_s
    from samples
),

final as (
    select
        evse_address,
        session_start,
        interval_start,
        min(acc_id) as acc_id,
        min(phases) as phases,
        sum(power_kw * own_s) / 3600 as own_kwh,
        sum(power_kw * spill_s) / 3600 as spill_kwh,
        max(power_kw) as max_power_kw,
        max(power_kw) filter (where spill_s > 0) as spill_max_power_kw,
        sum(own_s) as own_s,
        sum(spill_s) as spill_s,
        coalesce(sum(own_s) filter (where charging), 0) as own_charging_s,
        coalesce(sum(spill_s) filter (where charging), 0) as spill_charging_s
    from parts
    group by evse_address, session_start, interval_start
)

select * from final
