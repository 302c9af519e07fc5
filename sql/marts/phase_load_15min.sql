-- per site (acc_id), phase pair (AB/BC/CA) and 15-minute interval: the demand on each phase
with evse_load as (
    select * from {{ ref('evse_load_15min') }}
),

phase_load as (
    select
        acc_id,
        phases,
        interval_start,
        sum(energy_kwh) / 0.25 as demand_kw,
        -- non-coincident: each EVSE's own highest sample, summed (an upper bound of the phase's)
        sum(max_power_kw) as max_power_kw,
        sum(energy_kwh) as energy_kwh,
        count(distinct evse_address) filter (where energy_kwh > 0) as evse_count
    from evse_load
    group by acc_id, phases, interval_start
),

final as (
    select
        phase_load.acc_id,
        phase_load.phases,
        phase_load.interval_start,
        timezone(coalesce(sites.tz, 'UTC'), phase_load.interval_start) as interval_start_local,
        phase_load.demand_kw,
        phase_load.max_power_kw,
        phase_load.energy_kwh,
        phase_load.evse_count
    from phase_load
    left join {{ ref('sites') }} as sites on sites.acc_id = phase_load.acc_id
)

select * from final
