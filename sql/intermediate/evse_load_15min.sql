-- per EVSE and 15-minute UTC interval: each sample's power held for its capped duration,
-- split exactly at interval boundaries (the base of the load and utilization marts)
with samples as (
    select
        evse_address,
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
    -- the part of the duration in the sample's own interval, and what spills into the next
    -- (durations are capped at 3 sample periods: for periods up to 5 minutes that is at most
    -- one boundary; anything beyond the next interval is not counted)
    select
        *,
        least(duration_s, epoch(interval_start + interval 15 minute - time)) as own_s,
        least(duration_s - least(duration_s, epoch(interval_start + interval 15 minute - time)), 900)
            as spill_s
    from samples
),

per_interval as materialized (
    -- one pass over the samples; the spill is moved to the next interval after aggregating
    select
        evse_address,
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
    group by evse_address, interval_start
),

shifted as (
    select
        evse_address,
        interval_start,
        acc_id,
        phases,
        own_kwh as energy_kwh,
        max_power_kw,
        own_s as plugged_seconds,
        own_charging_s as charging_seconds
    from per_interval
    union all
    select
        evse_address,
        interval_start + interval 15 minute as interval_start,
        acc_id,
        phases,
        spill_kwh as energy_kwh,
        spill_max_power_kw as max_power_kw,
        spill_s as plugged_seconds,
        spill_charging_s as charging_seconds
    from per_interval
    where spill_s > 0
),

final as (
    select
        evse_address,
        interval_start,
        min(acc_id) as acc_id,
        min(phases) as phases,
        sum(energy_kwh) as energy_kwh,
        max(max_power_kw) as max_power_kw,
        sum(plugged_seconds) as plugged_seconds,
        sum(charging_seconds) as charging_seconds
    from shifted
    group by evse_address, interval_start
)

select * from final
