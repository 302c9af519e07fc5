-- per measurement, EVSE and UTC hour: how much telemetry the lake holds (gaps, freshness);
-- counted from each slot file as it is written (a derived table)
with coverage as (
    select * from {{ derived('coverage') }}
),

final as (
    select
        measurement,
        evse_address,
        hour_start,
        samples,
        first_time,
        last_time,
        acc_id
    from coverage
)

select * from final
