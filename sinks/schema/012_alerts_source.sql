-- Alert transitions name the Kafka log they were made from (like raw events), so that a
-- worker taking over a partition knows which transitions of it are stored already: a
-- replay after a crash, batched differently, would otherwise store one again.
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '' FIRST
