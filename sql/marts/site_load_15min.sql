-- per site (acc_id) and 15-minute interval: the demand a utility bills
with evse_load as (
    select * from {{ ref('evse_load_15min') }}
),

site_load as (
    select
        acc_id,
        interval_start,
        sum(energy_kwh) / 0.25 as demand_kw,
        -- non-coincident: each EVSE's own highest sample, summed (an upper bound of the site's)
        sum(max_power_kw) as max_power_kw,
        sum(energy_kwh) as energy_kwh,
        count(distinct evse_address) filter (where energy_kwh > 0) as evse_count
    from evse_load
    group by acc_id, interval_start
),

final as (
    select
        site_load.acc_id,
        site_load.interval_start,
        timezone(coalesce(sites.tz, 'UTC'), site_load.interval_start) as interval_start_local,
        site_load.demand_kw,
        site_load.max_power_kw,
        site_load.energy_kwh,
        site_load.evse_count
    from site_load
    left join {{ ref('sites') }} as sites on sites.acc_id = site_load.acc_id
)

select * from final
