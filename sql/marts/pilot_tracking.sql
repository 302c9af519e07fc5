-- per session: how closely the vehicle's current followed the pilot signal while charging
-- (reads session_samples once, not charging_sessions, so the sessionization runs once)
with samples as (
    select
        evse_address,
        session_start,
        time,
        time + to_microseconds((duration_s * 1e6)::bigint) as held_until,
        charging and current_actual_a is not null and pilot_actual_a is not null as tracked,
        current_actual_a,
        pilot_actual_a,
        abs(current_actual_a - pilot_actual_a) as pilot_error_a
    from {{ ref('session_samples') }}
),

tracking as (
    select
        evse_address,
        session_start,
        max(held_until) as session_end,
        count(*) filter (where tracked) as charging_samples,
        avg(pilot_error_a) filter (where tracked) as mean_abs_pilot_error_a,
        quantile_cont(pilot_error_a, 0.95) filter (where tracked) as p95_abs_pilot_error_a,
        -- at or below the pilot (plus 1 A of meter tolerance) is following it
        avg((current_actual_a <= pilot_actual_a + 1.0)::int) filter (where tracked)
            as within_pilot_share,
        avg(current_actual_a / pilot_actual_a) filter (where tracked and pilot_actual_a > 0)
            as mean_current_pilot_ratio
    from samples
    group by evse_address, session_start
),

limits as (
    select
        tracking.evse_address,
        tracking.session_start,
        avg(evse_request.current_limit_a) as mean_current_limit_a
    from tracking
    inner join {{ ref('evse_request') }} as evse_request
        on evse_request.evse_address = tracking.evse_address
        and evse_request.time >= tracking.session_start
        and evse_request.time < tracking.session_end
    group by tracking.evse_address, tracking.session_start
),

final as (
    select
        -- the same key as charging_sessions.session_id
        md5(tracking.evse_address || '|' || epoch_us(tracking.session_start)::varchar)
            as session_id,
        tracking.evse_address,
        tracking.session_start,
        tracking.charging_samples,
        tracking.mean_abs_pilot_error_a,
        tracking.p95_abs_pilot_error_a,
        tracking.within_pilot_share,
        tracking.mean_current_pilot_ratio,
        limits.mean_current_limit_a
    from tracking
    left join limits
        on limits.evse_address = tracking.evse_address
        and limits.session_start = tracking.session_start
)

select * from final
