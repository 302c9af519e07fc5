-- per site (acc_id) and 15-minute interval, every interval from the site's first to its last
-- in site_load_15min: demand_kw is 0 where site_load_15min has no row (nobody plugged in), so
-- a step chart drops there instead of holding; has_load marks the rows site_load_15min holds.
-- The report keeps interval_start in [start, end), then only the rows from each site's first
-- to its last with has_load: the same grid as filling the gaps inside the range.
with site_load as materialized (
    -- read twice below (span and join): evaluated once
    select * from {{ ref('site_load_15min') }}
),

span as (
    select
        acc_id,
        min(interval_start) as first_interval_start,
        max(interval_start) as last_interval_start
    from site_load
    group by acc_id
),

grid as (
    select
        acc_id,
        unnest(generate_series(first_interval_start, last_interval_start, interval 15 minute))
            as interval_start
    from span
),

filled as (
    select
        grid.acc_id,
        grid.interval_start,
        coalesce(
            site_load.interval_start_local,
            timezone(coalesce(sites.tz, 'UTC'), grid.interval_start)
        ) as interval_start_local,
        site_load.interval_start is not null as has_load,
        coalesce(site_load.demand_kw, 0) as demand_kw,
        site_load.energy_kwh
    from grid
    left join site_load
        on site_load.acc_id is not distinct from grid.acc_id
        and site_load.interval_start = grid.interval_start
    left join {{ ref('sites') }} as sites on sites.acc_id = grid.acc_id
),

final as (
    select
        acc_id,
        interval_start,
        interval_start_local,
        interval_start_local::date as day_local,
        -- the billing month, to find the month's target in report_monthly_peak
        date_trunc('month', interval_start_local)::date as month_start_local,
        -- the chart's buckets: a long range is drawn per hour or per day (the peak kept)
        time_bucket(interval 15 minute, interval_start_local) as bucket_15min_local,
        time_bucket(interval 1 hour, interval_start_local) as bucket_1h_local,
        time_bucket(interval 1 day, interval_start_local) as bucket_1d_local,
        has_load,
        demand_kw,
        energy_kwh
    from filled
)

select * from final
