-- per priced site and local billing month, the bill as the report's cost section shows it;
-- the report keeps the months its range touches
with bills as (
    select * from {{ ref('monthly_bill') }}
),

final as (
    select
        acc_id,
        month_start_local,
        tariff_name,
        energy_kwh,
        energy_charge_usd,
        peak_demand_kw,
        demand_charge_usd_per_kw,
        demand_charge_usd,
        total_usd,
        target_peak_power_kw,
        demand_charge_at_target_usd
    from bills
    where tariff_name is not null
)

select * from final
