-- per priced site and 15-minute interval: demand and the price it was billed at, for the
-- price-coloured load; the report keeps interval_start in [start, end)
with costs as (
    select * from {{ ref('energy_cost_15min') }}
),

final as (
    select
        acc_id,
        interval_start,
        interval_start_local,
        -- the chart's coarser bucket on long ranges
        time_bucket(interval 1 hour, interval_start_local) as bucket_1h_local,
        demand_kw,
        energy_kwh,
        price_usd_per_kwh,
        energy_cost_usd
    from costs
    where price_usd_per_kwh is not null
)

select * from final
