-- one row per ct_response sample inside a plug-in session, with the session it belongs to
-- (how sessions are cut: powerflex_etl/marts/sessionize.py and docs/analytics.md). Kept
-- current in the lake by every write (a derived table), not recomputed here.
select * from {{ derived('session_samples') }}
