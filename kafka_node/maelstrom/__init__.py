"""A Maelstrom-compatible runner and checker for the `kafka` workload: drives any node binary
over its stdin/stdout as Maelstrom does, records the history and judges it."""
