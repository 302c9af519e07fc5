-- per EVSE and 15-minute UTC interval: each sample's power held for its capped duration,
-- split exactly at interval boundaries (the base of the load and utilization marts)
with samples as (
    select
        evse_address,
        acc_id,
        phases,
        time,
        time + to_microseconds((duration_s * 1e6)::bigint) as held_until,
        coalesce(power_kw, 0) as power_kw,
        charging
    from session_samples
    where duration_s > 0
),

split as (
    select
        *,
        unnest(
            generate_series(time_bucket(interval 15 minute, time), held_until, interval 15 minute)
        ) as interval_start
    from samples
),

clipped as (
    select
        *,
        epoch(
            least(held_until, interval_start + interval 15 minute) - greatest(time, interval_start)
        ) as seconds
    from split
),

final as (
    select
        evse_address,
        min(acc_id) as acc_id,
        min(phases) as phases,
        interval_start,
        sum(power_kw * seconds) / 3600 as energy_kwh,
        max(power_kw) as max_power_kw,
        sum(seconds) as plugged_seconds,
        coalesce(sum(seconds) filter (where charging), 0) as charging_seconds
    from clipped
    where seconds > 0
    group by evse_address, interval_start
)

select * from final
