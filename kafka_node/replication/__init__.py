"""Replication across nodes: each key's partition has replicas, a leader and an in-sync set kept in
Maelstrom's lin-kv (`leadership`), batches copied from leader to followers (`leader`, `follower`)."""
