-- per priced session, what it cost; the report keeps session_start in [start, end)
with costs as (
    select * from {{ ref('session_cost') }}
),

final as (
    select
        session_id,
        evse_address,
        acc_id,
        session_start,
        session_start_local,
        energy_kwh,
        energy_cost_usd,
        avg_price_usd_per_kwh
    from costs
    where energy_cost_usd is not null
)

select * from final
