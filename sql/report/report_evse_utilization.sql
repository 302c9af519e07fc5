-- per EVSE and local day, the hours the report draws; the report keeps the local days its
-- range touches
with utilization as (
    select * from {{ ref('evse_utilization') }}
),

final as (
    select
        evse_address,
        day_local,
        plugged_hours,
        charging_hours
    from utilization
)

select * from final
