-- rows that could not be trusted, one per (measurement, raw row), with the reason and the raw JSON
with source as (
    select * from {{ source('rejects') }}
),

final as (
    select * from source
)

select * from final
