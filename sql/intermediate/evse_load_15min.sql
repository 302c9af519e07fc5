-- per EVSE and 15-minute UTC interval: each sample's power held for its capped duration,
-- split exactly at interval boundaries (the base of the load and utilization marts). The
-- derived table holds each session's part per interval of its samples and what spills into
-- the next interval; here the spill moves there and the sessions of an interval add up.
with parts as (
    select * from {{ derived('session_load') }}
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
    from parts
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
    from parts
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
