-- per session, what the report shows of it; the report keeps session_start in [start, end)
with sessions as (
    select * from {{ ref('charging_sessions') }}
),

final as (
    select
        session_start,
        evse_address,
        acc_id,
        -- a session counts on the local day it started
        session_start_local::date as day_local,
        epoch(session_end - session_start) / 3600.0 as duration_h,
        energy_kwh,
        -- cut sessions are drawn apart: they began or end outside the lake
        coalesce(cut_at_start or cut_at_end, false) as cut
    from sessions
)

select * from final
