-- per site and 15-minute interval: the energy charge of its load, at the price of the tariff
-- period in force at the interval's local start (sites.toml names each site's tariff)
with site_load as (
    select * from {{ ref('site_load_15min') }}
),

prices as (
    select * from {{ ref('tariff_price_15min') }}
),

final as (
    select
        site_load.acc_id,
        site_load.interval_start,
        site_load.interval_start_local,
        site_load.energy_kwh,
        site_load.demand_kw,
        prices.tou_period,
        prices.price_usd_per_kwh,
        site_load.energy_kwh * prices.price_usd_per_kwh as energy_cost_usd
    from site_load
    left join prices
        on prices.acc_id = site_load.acc_id
        and prices.interval_start = site_load.interval_start
)

select * from final
