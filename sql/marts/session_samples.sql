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
    from ct_response
),

connected as (
    -- evse_response's own view of the plug, per EVSE and minute (its samples need not share
    -- ct_response's timestamps); an equi-join keeps this a hash join, not a range join
    select
        evse_address,
        date_trunc('minute', time) as minute,
        arg_max(connected, time) as connected
    from evse_response
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

starts as (
    select
        *,
        in_session
        and (
            not coalesce(prev_plugged, false)
            -- the meter never runs backwards within a plug-in: a drop means a new vehicle
            or coalesce(energy_delivered_kwh < prev_energy_kwh - 0.01, false)
        ) as new_session
    from flagged
),

sequenced as (
    -- only samples inside a plug-in go on: the second sort is over far fewer rows
    select
        *,
        last_value(case when new_session then time end ignore nulls) over (
            partition by evse_address order by time rows unbounded preceding
        ) as session_start,
        median(period_s) over (partition by evse_address) as median_period_s
    from starts
    where in_session
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
