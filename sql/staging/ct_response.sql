-- ct_response rows as the lake stores them: units already converted (CONTRACT §2),
-- time in UTC (timestamptz), ids as strings, extra API fields kept; date is the UTC partition
with source as (
    select * from {{ source('ct_response') }}
),

final as (
    select * from source
)

select * from final
