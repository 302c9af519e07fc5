-- per session (derived from session_samples by every write): what charging_sessions and
-- pilot_tracking show, computed once per session instead of on every query
with samples as (
    select * from {{ ref('session_samples') }}
),

sessions as (
    select
        evse_address,
        session_start,
        -- the session's own ids (an EVSE that moves to another site keeps each session's)
        min(acn_id) as acn_id,
        min(acc_id) as acc_id,
        min(acg_id) as acg_id,
        min(acs_id) as acs_id,
        min(space_number) as space_number,
        -- end of the last sample's (capped) interval: the unplug sample's time when it follows
        max(time + to_microseconds((duration_s * 1e6)::bigint)) as session_end,
        max(energy_delivered_kwh) as max_energy_kwh,
        arg_min(energy_delivered_kwh, time) filter (
            where energy_delivered_kwh is not null
        ) as first_energy_kwh,
        max(power_kw) as peak_power_kw,
        coalesce(sum(duration_s) filter (where charging), 0) / 60 as charging_minutes,
        coalesce(sum(duration_s) filter (where not charging), 0) / 60 as idle_minutes,
        count(*) as samples,
        bool_or(first_of_evse) as cut_at_start,
        bool_or(last_of_evse) as cut_at_end
    from samples
    group by evse_address, session_start
),

tracked as (
    select
        evse_address,
        session_start,
        current_actual_a,
        pilot_actual_a,
        abs(current_actual_a - pilot_actual_a) as pilot_error_a
    from samples
    where charging and current_actual_a is not null and pilot_actual_a is not null
),

tracking as (
    select
        evse_address,
        session_start,
        count(*) as charging_samples,
        avg(pilot_error_a) as mean_abs_pilot_error_a,
        quantile_cont(pilot_error_a, 0.95) as p95_abs_pilot_error_a,
        -- at or below the pilot (plus 1 A of meter tolerance) is following it
        avg((current_actual_a <= pilot_actual_a + 1.0)::int) as within_pilot_share,
        avg(current_actual_a / pilot_actual_a) filter (where pilot_actual_a > 0)
            as mean_current_pilot_ratio
    from tracked
    group by evse_address, session_start
),

limits as (
    select
        sessions.evse_address,
        sessions.session_start,
        avg(requests.current_limit_a) as mean_current_limit_a
    from sessions
    inner join {{ ref('evse_request') }} as requests
        on requests.evse_address = sessions.evse_address
        and requests.time >= sessions.session_start
        and requests.time < sessions.session_end
    group by sessions.evse_address, sessions.session_start
),

final as (
    select
        sessions.*,
        coalesce(tracking.charging_samples, 0) as charging_samples,
        tracking.mean_abs_pilot_error_a,
        tracking.p95_abs_pilot_error_a,
        tracking.within_pilot_share,
        tracking.mean_current_pilot_ratio,
        limits.mean_current_limit_a
    from sessions
    left join tracking using (evse_address, session_start)
    left join limits using (evse_address, session_start)
)

select * from final
