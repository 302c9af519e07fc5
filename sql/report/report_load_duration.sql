-- per site and local month, the load-duration curve; the report keeps the months its range
-- touches
with curve as (
    select * from {{ ref('load_duration') }}
),

final as (
    select
        acc_id,
        month_start_local,
        rank,
        hours_at_or_above,
        demand_kw
    from curve
)

select * from final
