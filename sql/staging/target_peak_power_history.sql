-- every snapshot of the DCM endpoint, one row per month per snapshot
with source as (
    select * from {{ source('target_peak_power') }}
),

final as (
    select * from source
)

select * from final
