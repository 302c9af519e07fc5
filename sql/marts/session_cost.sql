-- per session: its 15-minute energies priced like the site's (tariff_price_15min), so the
-- sessions of an interval add up to that interval's energy_cost_15min
with parts as (
    select * from {{ derived('session_load') }}
),

shifted as (
    -- as evse_load_15min does: the part of a sample that spills over is the next interval's
    select evse_address, session_start, acc_id, interval_start, own_kwh as energy_kwh
    from parts
    union all
    select
        evse_address,
        session_start,
        acc_id,
        interval_start + interval 15 minute as interval_start,
        spill_kwh as energy_kwh
    from parts
    where spill_s > 0
),

priced as (
    select
        shifted.evse_address,
        shifted.session_start,
        shifted.energy_kwh,
        shifted.energy_kwh * prices.price_usd_per_kwh as energy_cost_usd
    from shifted
    left join {{ ref('tariff_price_15min') }} as prices
        on prices.acc_id = shifted.acc_id
        and prices.interval_start = shifted.interval_start
),

per_session as (
    select
        evse_address,
        session_start,
        sum(energy_kwh) as energy_kwh,
        sum(energy_cost_usd) as energy_cost_usd
    from priced
    group by evse_address, session_start
),

final as (
    select
        sessions.session_id,
        sessions.evse_address,
        sessions.acc_id,
        sessions.session_start,
        sessions.session_start_local,
        coalesce(per_session.energy_kwh, 0) as energy_kwh,
        -- a site without a tariff has no price, so no cost; with one, no energy costs 0
        case
            when tariffs.acc_id is not null then coalesce(per_session.energy_cost_usd, 0)
        end as energy_cost_usd,
        per_session.energy_cost_usd / nullif(per_session.energy_kwh, 0) as avg_price_usd_per_kwh
    from {{ ref('charging_sessions') }} as sessions
    left join per_session
        on per_session.evse_address = sessions.evse_address
        and per_session.session_start = sessions.session_start
    left join {{ ref('tariffs') }} as tariffs on tariffs.acc_id = sessions.acc_id
)

select * from final
