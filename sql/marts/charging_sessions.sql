-- one row per plug-in: see docs/analytics.md for how sessions are cut and measured
with sessions as (
    select * from {{ derived('sessions') }}
),

final as (
    select
        -- stable across reruns while the lake holds the session's first sample
        md5(sessions.evse_address || '|' || epoch_us(sessions.session_start)::varchar)
            as session_id,
        sessions.evse_address,
        sessions.acn_id,
        sessions.acc_id,
        sessions.acg_id,
        sessions.acs_id,
        sessions.space_number,
        sessions.session_start,
        sessions.session_end,
        timezone(coalesce(sites.tz, 'UTC'), sessions.session_start) as session_start_local,
        timezone(coalesce(sites.tz, 'UTC'), sessions.session_end) as session_end_local,
        -- a session cut at its start began before the lake: count only what the lake saw
        sessions.max_energy_kwh
        - case when sessions.cut_at_start then sessions.first_energy_kwh else 0 end as energy_kwh,
        sessions.peak_power_kw,
        sessions.charging_minutes,
        sessions.idle_minutes,
        sessions.samples,
        sessions.cut_at_start,
        sessions.cut_at_end
    from sessions
    left join {{ ref('sites') }} as sites on sites.acc_id = sessions.acc_id
)

select * from final
