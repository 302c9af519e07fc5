-- per EVSE and local day: how long it was plugged and charging, what it delivered
with evse_load as (
    select
        evse_load_15min.*,
        timezone(coalesce(sites.tz, 'UTC'), interval_start)::date as day_local
    from {{ ref('evse_load_15min') }} as evse_load_15min
    left join {{ ref('sites') }} as sites on sites.acc_id = evse_load_15min.acc_id
),

daily_load as (
    select
        evse_address,
        day_local,
        sum(plugged_seconds) / 3600 as plugged_hours,
        sum(charging_seconds) / 3600 as charging_hours,
        sum(energy_kwh) as energy_kwh
    from evse_load
    group by evse_address, day_local
),

daily_sessions as (
    -- a session counts on the local day it started
    select
        evse_address,
        session_start_local::date as day_local,
        count(*) as sessions
    from {{ ref('charging_sessions') }}
    group by evse_address, session_start_local::date
),

final as (
    select
        coalesce(daily_load.evse_address, daily_sessions.evse_address) as evse_address,
        coalesce(daily_load.day_local, daily_sessions.day_local) as day_local,
        coalesce(daily_load.plugged_hours, 0) as plugged_hours,
        coalesce(daily_load.charging_hours, 0) as charging_hours,
        coalesce(daily_load.energy_kwh, 0) as energy_kwh,
        coalesce(daily_sessions.sessions, 0) as sessions
    from daily_load
    full outer join daily_sessions
        on daily_sessions.evse_address = daily_load.evse_address
        and daily_sessions.day_local = daily_load.day_local
)

select * from final
