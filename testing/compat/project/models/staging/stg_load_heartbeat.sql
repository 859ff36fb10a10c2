-- What a loader that has just run would leave: the `load_heartbeat` source reads it, so its
-- freshness passes on any day.
select current_timestamp as loaded_at
