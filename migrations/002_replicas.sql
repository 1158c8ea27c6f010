-- kafka-node schema, version 2: what a replicated log needs to keep its replicas alike.
-- On several nodes with --replication-factor above 1, each key belongs to a partition, and
-- every transaction of a partition's leader that sends to it is one batch of that partition:
-- its messages carry the partition, the batch's sequence number (dense from 1 within the
-- partition) and the leader epoch that wrote it. Replicas compare (seq, epoch) to find where
-- they diverge and truncate there (Kafka's KIP-101). On one node, or with one copy per key,
-- the three stay NULL.

ALTER TABLE messages ADD COLUMN part INTEGER;
ALTER TABLE messages ADD COLUMN seq INTEGER;
ALTER TABLE messages ADD COLUMN epoch INTEGER;

-- A partition's batches in order, for a replica that catches up or truncates.
CREATE INDEX messages_by_batch ON messages (part, seq) WHERE seq IS NOT NULL;

-- One row per partition and batch: SELECT * FROM partition_batches WHERE part = 0;
CREATE VIEW partition_batches AS
SELECT part, seq, epoch, count(*) AS messages
FROM messages
WHERE seq IS NOT NULL
GROUP BY part, seq, epoch;
