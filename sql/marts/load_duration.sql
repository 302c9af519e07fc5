-- per site and local month: every 15-minute demand of the month, highest first, with its rank
-- (the load-duration curve: how many hours the site really spends near its peak). Intervals
-- where nobody was plugged in count as 0 kW, from the site's first interval with load to its
-- last, so a month's curve has one point per quarter hour the lake covers.
with site_load as materialized (
    -- read twice below (span and join): evaluated once
    select * from {{ ref('site_load_15min') }}
),

span as (
    select
        acc_id,
        min(interval_start) as first_start,
        max(interval_start) as last_start
    from site_load
    group by acc_id
),

grid as (
    select
        acc_id,
        unnest(generate_series(first_start, last_start, interval 15 minute)) as interval_start
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
        coalesce(site_load.demand_kw, 0) as demand_kw
    from grid
    left join site_load
        on site_load.acc_id is not distinct from grid.acc_id
        and site_load.interval_start = grid.interval_start
    left join {{ ref('sites') }} as sites on sites.acc_id = grid.acc_id
),

monthly as (
    select
        *,
        date_trunc('month', interval_start_local)::date as month_start_local
    from filled
),

final as (
    select
        acc_id,
        month_start_local,
        -- ties go to the earliest interval, so the ranks are the same on every run
        row_number() over (
            partition by acc_id, month_start_local order by demand_kw desc, interval_start
        ) as rank,
        demand_kw,
        -- quarter hours of the month at or above this demand (ties included), in hours
        (count(*) over (
            partition by acc_id, month_start_local
            order by demand_kw desc
            range between unbounded preceding and current row
        ))::double / 4 as hours_at_or_above,
        100 * demand_kw / nullif(max(demand_kw) over (partition by acc_id, month_start_local), 0)
            as pct_of_peak,
        interval_start,
        interval_start_local
    from monthly
)

select * from final
