-- the latest snapshot per acc_id of the DCM endpoint (same columns as external_signals_history)
with source as (
    select * from {{ source('external_signals') }}
),

latest as (
    select *
    from source
    qualify snapshot_at = max(snapshot_at) over (partition by acc_id)
)

select * from latest
