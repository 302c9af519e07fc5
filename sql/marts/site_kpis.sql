-- per site and local day, and per site and local month (grain = 'day' | 'month'): the
-- operator portal's KPIs from the derived tables. A site's EVSEs are every EVSE that sent
-- ct_response for it; its hours are the UTC clock hours from its first to its last hour with
-- telemetry, each counted on the local day it starts in (exact for whole-hour UTC offsets).
with coverage as (
    select evse_address, acc_id, hour_start
    from {{ derived('coverage') }}
    where measurement = 'ct_response'
),

site_evses as (
    select distinct acc_id, evse_address
    from coverage
    where acc_id is not null
),

site_span as (
    select acc_id, min(hour_start) as first_hour, max(hour_start) as last_hour
    from coverage
    where acc_id is not null
    group by acc_id
),

site_hours as (
    select
        acc_id,
        unnest(generate_series(first_hour, last_hour, interval 1 hour)) as hour_start
    from site_span
),

reported as (
    select distinct evse_address, hour_start from coverage
),

evse_hours as (
    -- every hour of the site's span for each of its EVSEs, and whether the EVSE reported in it
    select
        site_hours.acc_id,
        timezone(coalesce(sites.tz, 'UTC'), site_hours.hour_start)::date as day_local,
        reported.evse_address is not null as has_telemetry
    from site_hours
    inner join site_evses on site_evses.acc_id = site_hours.acc_id
    left join reported
        on reported.evse_address = site_evses.evse_address
        and reported.hour_start = site_hours.hour_start
    left join {{ ref('sites') }} as sites on sites.acc_id = site_hours.acc_id
),

uptime as (
    select
        acc_id,
        case when grouping(day_local) = 0 then 'day' else 'month' end as grain,
        coalesce(day_local, month_local) as period_start_local,
        count(*) as evse_hours,
        count(*) filter (where not has_telemetry) as hours_without_telemetry
    from (select *, date_trunc('month', day_local)::date as month_local from evse_hours)
    group by grouping sets ((acc_id, day_local), (acc_id, month_local))
),

evse_count as (
    select acc_id, count(*) as evse_count from site_evses group by acc_id
),

evse_load as (
    select
        evse_load_15min.acc_id,
        evse_load_15min.interval_start,
        timezone(coalesce(sites.tz, 'UTC'), evse_load_15min.interval_start) as interval_start_local,
        evse_load_15min.energy_kwh,
        evse_load_15min.plugged_seconds
    from {{ ref('evse_load_15min') }} as evse_load_15min
    left join {{ ref('sites') }} as sites on sites.acc_id = evse_load_15min.acc_id
),

hourly as (
    -- the site's energy per local clock hour (its start in UTC keeps fall-back's two 01:00 apart)
    select
        acc_id,
        interval_start - to_minutes(minute(interval_start_local)) as hour_start,
        date_trunc('hour', interval_start_local) as hour_start_local,
        sum(energy_kwh) as energy_kwh,
        sum(plugged_seconds) as plugged_seconds
    from evse_load
    group by all
),

load_kpis as (
    select
        acc_id,
        case when grouping(day_local) = 0 then 'day' else 'month' end as grain,
        coalesce(day_local, month_local) as period_start_local,
        sum(energy_kwh) as energy_kwh,
        sum(plugged_seconds) / 3600 as plugged_hours,
        -- the hour with the highest mean power; ties go to the earliest
        arg_min(hour_start_local, (-energy_kwh, hour_start)) as peak_hour_start_local,
        max(energy_kwh) as peak_hour_kw
    from (
        select
            *,
            hour_start_local::date as day_local,
            date_trunc('month', hour_start_local)::date as month_local
        from hourly
    )
    group by grouping sets ((acc_id, day_local), (acc_id, month_local))
),

session_kpis as (
    -- a session counts in the local day and month it started; a microsession delivered
    -- less than 1 kWh (ACN-Data's own download threshold for a real charge)
    select
        acc_id,
        case when grouping(day_local) = 0 then 'day' else 'month' end as grain,
        coalesce(day_local, month_local) as period_start_local,
        count(*) as sessions,
        count(*) filter (where energy_kwh < 1.0) as microsessions,
        avg(charging_minutes) as mean_charging_minutes,
        avg(idle_minutes) as mean_idle_minutes
    from (
        select
            *,
            session_start_local::date as day_local,
            date_trunc('month', session_start_local)::date as month_local
        from {{ ref('charging_sessions') }}
    )
    group by grouping sets ((acc_id, day_local), (acc_id, month_local))
),

final as (
    select
        uptime.acc_id,
        uptime.grain,
        uptime.period_start_local,
        evse_count.evse_count,
        coalesce(session_kpis.sessions, 0) as sessions,
        coalesce(session_kpis.microsessions, 0) as microsessions,
        uptime.evse_hours,
        coalesce(load_kpis.plugged_hours, 0) as plugged_hours,
        100 * coalesce(load_kpis.plugged_hours, 0) / uptime.evse_hours as utilization_pct,
        session_kpis.mean_charging_minutes,
        session_kpis.mean_idle_minutes,
        coalesce(load_kpis.energy_kwh, 0) as energy_kwh,
        load_kpis.peak_hour_start_local,
        load_kpis.peak_hour_kw,
        uptime.hours_without_telemetry,
        uptime.hours_without_telemetry / evse_count.evse_count as hours_without_telemetry_per_evse,
        100 * (uptime.evse_hours - uptime.hours_without_telemetry) / uptime.evse_hours as uptime_pct
    from uptime
    inner join evse_count on evse_count.acc_id = uptime.acc_id
    left join load_kpis
        on load_kpis.acc_id = uptime.acc_id
        and load_kpis.grain = uptime.grain
        and load_kpis.period_start_local = uptime.period_start_local
    left join session_kpis
        on session_kpis.acc_id = uptime.acc_id
        and session_kpis.grain = uptime.grain
        and session_kpis.period_start_local = uptime.period_start_local
)

select * from final
