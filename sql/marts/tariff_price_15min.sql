-- per site with a tariff and 15-minute UTC interval of its load's span: the price of the one
-- tariff period that claims the interval's local start (acnportal's rule; the catalog checked
-- that exactly one claims every local instant). The building block of every cost view, so
-- intervals and sessions are priced alike.
with spans as (
    -- a session's part that spills into the next interval is priced there: one more interval
    select
        acc_id,
        min(interval_start) as first_start,
        max(interval_start) + interval 15 minute as last_start
    from {{ derived('session_load') }}
    where acc_id in (select acc_id from {{ ref('tariffs') }})
    group by acc_id
),

grid as (
    select
        acc_id,
        unnest(generate_series(first_start, last_start, interval 15 minute)) as interval_start
    from spans
),

localized as (
    select
        grid.acc_id,
        grid.interval_start,
        timezone(coalesce(sites.tz, 'UTC'), grid.interval_start) as interval_start_local
    from grid
    left join {{ ref('sites') }} as sites on sites.acc_id = grid.acc_id
),

keyed as (
    select
        *,
        month(interval_start_local) * 100 + day(interval_start_local) as month_day,
        isodow(interval_start_local) as isodow,
        -- µs after local midnight, an integer: a fractional period start (8.5 = 08:30) compares exactly
        epoch_us(interval_start_local) - epoch_us(date_trunc('day', interval_start_local))
            as us_of_day
    from localized
),

final as (
    select
        keyed.acc_id,
        keyed.interval_start,
        keyed.interval_start_local,
        periods.tariff_name,
        periods.schedule_id,
        periods.tou_period,
        periods.price_usd_per_kwh,
        periods.demand_charge_usd_per_kw
    from keyed
    inner join {{ ref('tariff_periods') }} as periods
        on periods.acc_id = keyed.acc_id
        and keyed.month_day between periods.md_from and periods.md_to
        and keyed.isodow between periods.isodow_from and periods.isodow_to
        and keyed.us_of_day >= periods.start_us
        and keyed.us_of_day < periods.end_us
)

select * from final
