-- per session: how closely the vehicle's current followed the pilot signal while charging
-- (figures kept per session in the lake by every write: sql/derived/sessions.sql)
with sessions as (
    select * from {{ derived('sessions') }}
),

final as (
    select
        -- the same key as charging_sessions.session_id
        md5(evse_address || '|' || epoch_us(session_start)::varchar) as session_id,
        evse_address,
        session_start,
        charging_samples,
        mean_abs_pilot_error_a,
        p95_abs_pilot_error_a,
        within_pilot_share,
        mean_current_pilot_ratio,
        mean_current_limit_a
    from sessions
)

select * from final
