-- every snapshot of the DCM endpoint, one row per signal per snapshot
with source as (
    select * from {{ source('external_signals') }}
),

final as (
    select * from source
)

select * from final
