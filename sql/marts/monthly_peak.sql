-- per site and local billing month: the highest 15-minute demand against the DCM target
with site_load as (
    select * from {{ ref('site_load_15min') }}
),

monthly as (
    select
        acc_id,
        date_trunc('month', interval_start_local)::date as month_start_local,
        month(interval_start_local) as month_num,
        max(demand_kw) as peak_demand_kw,
        -- ties go to the earliest interval, so reruns name the same one
        arg_min(interval_start, (-demand_kw, interval_start)) as peak_interval_start,
        arg_min(interval_start_local, (-demand_kw, interval_start)) as peak_interval_start_local
    from site_load
    group by all
),

targets as (
    select acc_id, month_num, target_peak_power_kw
    from {{ ref('target_peak_power') }}
),

final as (
    select
        monthly.acc_id,
        monthly.month_start_local,
        monthly.month_num,
        monthly.peak_demand_kw,
        monthly.peak_interval_start,
        monthly.peak_interval_start_local,
        targets.target_peak_power_kw,
        -- greatest() skips nulls: an unknown target must give an unknown excess
        case
            when targets.target_peak_power_kw is not null
                then greatest(monthly.peak_demand_kw - targets.target_peak_power_kw, 0)
        end as excess_kw,
        monthly.peak_demand_kw > targets.target_peak_power_kw as over_target
    from monthly
    left join targets
        on targets.acc_id = monthly.acc_id
        and targets.month_num = monthly.month_num
)

select * from final
