-- per site and local billing month: what the tariff charges for energy and for demand, and
-- what the demand charge would have been had the peak been held to the DCM target
with costs as (
    select * from {{ ref('energy_cost_15min') }}
),

monthly as (
    select
        acc_id,
        date_trunc('month', interval_start_local)::date as month_start_local,
        sum(energy_kwh) as energy_kwh,
        sum(energy_cost_usd) as energy_charge_usd,
        max(demand_kw) as peak_demand_kw
    from costs
    group by all
),

demand_rates as (
    -- acnportal's rule: the demand charge of the schedule in force at the start of the
    -- billing period, i.e. at 00:00 on the month's first local day
    select
        periods.acc_id,
        monthly.month_start_local,
        periods.demand_charge_usd_per_kw
    from monthly
    inner join {{ ref('tariff_periods') }} as periods
        on periods.acc_id = monthly.acc_id
        and month(monthly.month_start_local) * 100 + 1 between periods.md_from and periods.md_to
        and isodow(monthly.month_start_local) between periods.isodow_from and periods.isodow_to
        and periods.start_us = 0
),

targets as (
    select acc_id, month_num, target_peak_power_kw
    from {{ ref('target_peak_power') }}
),

final as (
    select
        monthly.acc_id,
        monthly.month_start_local,
        tariffs.tariff_name,
        monthly.energy_kwh,
        monthly.energy_charge_usd,
        monthly.peak_demand_kw,
        demand_rates.demand_charge_usd_per_kw,
        demand_rates.demand_charge_usd_per_kw * monthly.peak_demand_kw as demand_charge_usd,
        monthly.energy_charge_usd
        + demand_rates.demand_charge_usd_per_kw * monthly.peak_demand_kw as total_usd,
        targets.target_peak_power_kw,
        -- DCM caps the peak at the target; a peak already below it would have stayed. least()
        -- skips nulls: an unknown target must give an unknown charge
        case
            when targets.target_peak_power_kw is not null
                then demand_rates.demand_charge_usd_per_kw
                * least(monthly.peak_demand_kw, targets.target_peak_power_kw)
        end as demand_charge_at_target_usd
    from monthly
    left join {{ ref('tariffs') }} as tariffs on tariffs.acc_id = monthly.acc_id
    left join demand_rates
        on demand_rates.acc_id = monthly.acc_id
        and demand_rates.month_start_local = monthly.month_start_local
    left join targets
        on targets.acc_id = monthly.acc_id
        and targets.month_num = month(monthly.month_start_local)
)

select * from final
