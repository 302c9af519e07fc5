-- one row per ct_response sample inside a plug-in session, with the session it belongs to
-- (the shared base of charging_sessions, evse_load_15min and pilot_tracking)
with source as (
    select
        evse_address,
        time,
        acn_id,
        acc_id,
        acg_id,
        acs_id,
        space_number,
        phases,
        charging_state,
        energy_delivered_kwh,
        current_actual_a,
        pilot_actual_a,
        -- power is what demand charges bill; fall back to v * i only when the meter gave none
        coalesce(power_kw, voltage_v * current_actual_a / 1000) as power_kw
    from {{ ref('ct_response') }}
),

connected as (
    -- evse_response's own view of the plug, per EVSE and minute (its samples need not share
    -- ct_response's timestamps); an equi-join keeps this a hash join, not a range join
    select
        evse_address,
        date_trunc('minute', time) as minute,
        arg_max(connected, time) as connected
    from {{ ref('evse_response') }}
    where connected is not null
    group by evse_address, date_trunc('minute', time)
),

corroborated as (
    select
        source.*,
        connected.connected
    from source
    left join connected
        on connected.evse_address = source.evse_address
        and connected.minute = date_trunc('minute', source.time)
),

classified as (
    select
        *,
        -- 1 A / 0.2 kW: below it is sensor noise (real READY samples show 0.4 A, 0.01 kW)
        coalesce(current_actual_a >= 1.0, power_kw >= 0.2, false) as drawing,
        case
            when charging_state = 'UNPLUGGED' then false
            when charging_state is not null then true
            when connected is not null then connected
            else coalesce(energy_delivered_kwh > 0, false)
                or coalesce(current_actual_a >= 1.0, power_kw >= 0.2, false)
        end as plugged
    from corroborated
),

neighbours as (
    select
        *,
        lag(plugged) over w as prev_plugged,
        lead(plugged) over w as next_plugged,
        lag(energy_delivered_kwh ignore nulls) over w as prev_energy_kwh,
        lead(time) over w as next_time
    from classified
    window w as (partition by evse_address order by time)
),

flagged as (
    select
        *,
        -- a lone plugged sample between unplugged ones, with no energy and no current, is noise
        plugged
        and not coalesce(
            prev_plugged = false
            and next_plugged = false
            and coalesce(energy_delivered_kwh, 0) = 0
            and not drawing,
            false
        ) as in_session,
        epoch(next_time - time) as period_s,
        -- plugged is never null, so only the EVSE's first sample has no previous one
        prev_plugged is null as first_of_evse,
        next_time is null as last_of_evse
    from neighbours
),

starts as materialized (
    -- only samples inside a plug-in go on; materialized because two readers follow, and
    -- otherwise DuckDB keeps the unfiltered window result (10M rows) or runs the sort twice
    select
        *,
        in_session
        and (
            not coalesce(prev_plugged, false)
            -- the meter never runs backwards within a plug-in: a drop means a new vehicle
            or coalesce(energy_delivered_kwh < prev_energy_kwh - 0.01, false)
        ) as new_session,
        -- the last sample before an unplug (a plugged sample never follows a noise one)
        not coalesce(next_plugged, false) as ends_plug_in
    from flagged
    where in_session
),

boundaries as (
    -- where sessions start and plug-ins end: a few rows per plug-in
    select
        evse_address,
        time as session_start,
        case
            when ends_plug_in then time + interval 1 microsecond
            -- the next boundary is a new session (meter reset) or the plug-in's last sample
            else lead(
                case when new_session then time else time + interval 1 microsecond end
            ) over (partition by evse_address order by time)
        end as session_until,
        new_session
    from starts
    where new_session or ends_plug_in
),

sessions as (
    -- each session's [start, until) span, spread over the hours it touches, so that
    -- samples find their session by an equi-join (a hash join) instead of a second sort
    -- (a second window pass cost as much as the first); one EVSE's spans never overlap
    select
        evse_address,
        session_start,
        session_until,
        -- whole hours since the epoch: integer arithmetic, no time zone rules per sample
        unnest(generate_series(
            epoch_us(session_start) // 3600000000,
            (epoch_us(session_until) - 1) // 3600000000
        )) as hour
    from boundaries
    where new_session
),

sequenced as (
    select
        starts.*,
        sessions.session_start,
        median(starts.period_s) over (partition by starts.evse_address) as median_period_s
    from starts
    left join sessions
        -- the windows keep null addresses together as one EVSE: so does the join
        on sessions.evse_address is not distinct from starts.evse_address
        and sessions.hour = epoch_us(starts.time) // 3600000000
        and starts.time >= sessions.session_start
        and starts.time < sessions.session_until
),

final as (
    select
        evse_address,
        time,
        acn_id,
        acc_id,
        acg_id,
        acs_id,
        space_number,
        phases,
        charging_state,
        energy_delivered_kwh,
        current_actual_a,
        pilot_actual_a,
        power_kw,
        drawing as charging,
        -- with evse_address, the session's key (charging_sessions derives session_id from it)
        session_start,
        -- time until the next sample, capped so telemetry gaps count as nothing
        -- (least() skips nulls: the EVSE's last sample, with no successor, counts 0)
        case when period_s is not null then least(period_s, 3 * median_period_s) else 0 end
            as duration_s,
        first_of_evse,
        last_of_evse
    from sequenced
)

select * from final
