-- per measurement, EVSE and UTC hour: how much telemetry the lake holds (gaps, freshness)
with samples as (
    select 'ct_response' as measurement, evse_address, time from {{ ref('ct_response') }}
    union all
    select 'evse_request' as measurement, evse_address, time from {{ ref('evse_request') }}
    union all
    select 'evse_response' as measurement, evse_address, time from {{ ref('evse_response') }}
),

final as (
    select
        measurement,
        evse_address,
        date_trunc('hour', time) as hour_start,
        count(*) as samples,
        min(time) as first_time,
        max(time) as last_time
    from samples
    group by measurement, evse_address, date_trunc('hour', time)
)

select * from final
