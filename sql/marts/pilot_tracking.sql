-- per session: how closely the vehicle's current followed the pilot signal while charging
with charging as (
    select
        evse_address,
        session_start,
        current_actual_a,
        pilot_actual_a,
        abs(current_actual_a - pilot_actual_a) as pilot_error_a
    from session_samples
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
    from charging
    group by evse_address, session_start
),

limits as (
    select
        charging_sessions.session_id,
        avg(evse_request.current_limit_a) as mean_current_limit_a
    from charging_sessions
    inner join evse_request
        on evse_request.evse_address = charging_sessions.evse_address
        and evse_request.time >= charging_sessions.session_start
        and evse_request.time < charging_sessions.session_end
    group by charging_sessions.session_id
),

final as (
    select
        charging_sessions.session_id,
        charging_sessions.evse_address,
        charging_sessions.session_start,
        coalesce(tracking.charging_samples, 0) as charging_samples,
        tracking.mean_abs_pilot_error_a,
        tracking.p95_abs_pilot_error_a,
        tracking.within_pilot_share,
        tracking.mean_current_pilot_ratio,
        limits.mean_current_limit_a
    from charging_sessions
    left join tracking
        on tracking.evse_address = charging_sessions.evse_address
        and tracking.session_start = charging_sessions.session_start
    left join limits on limits.session_id = charging_sessions.session_id
)

select * from final
