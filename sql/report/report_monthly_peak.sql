-- per site and local billing month, the peak against the DCM target as the report tabulates
-- it; the report keeps the months its range touches
with monthly as (
    select * from {{ ref('monthly_peak') }}
),

final as (
    select
        acc_id,
        month_start_local,
        peak_demand_kw,
        peak_interval_start,
        target_peak_power_kw,
        excess_kw,
        over_target
    from monthly
)

select * from final
