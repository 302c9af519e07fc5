-- one row per plug-in: see docs/analytics.md for how sessions are cut and measured
with samples as (
    select *
    from {{ ref('session_samples') }}
),

evse_ids as (
    -- ids are the EVSE's, not the session's: read them apart so the sort carries less
    select
        evse_address,
        min(acn_id) as acn_id,
        min(acc_id) as acc_id,
        min(acg_id) as acg_id,
        min(acs_id) as acs_id,
        min(space_number) as space_number
    from {{ ref('ct_response') }}
    group by evse_address
),

sessions as (
    select
        evse_address,
        session_start,
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

final as (
    select
        -- stable across reruns while the lake holds the session's first sample
        md5(sessions.evse_address || '|' || epoch_us(sessions.session_start)::varchar)
            as session_id,
        sessions.evse_address,
        evse_ids.acn_id,
        evse_ids.acc_id,
        evse_ids.acg_id,
        evse_ids.acs_id,
        evse_ids.space_number,
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
    left join evse_ids on evse_ids.evse_address = sessions.evse_address
    left join {{ ref('sites') }} as sites on sites.acc_id = evse_ids.acc_id
)

select * from final
