-- Alert transitions carry a deduplication token like every other insert, but a plain
-- (non-replicated) table ignores tokens unless it keeps a deduplication window: a
-- retried insert stored each transition twice (FINAL hid it, counts did not).
ALTER TABLE {db}.alerts MODIFY SETTING non_replicated_deduplication_window = 1000
