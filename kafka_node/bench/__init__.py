"""The benchmark of kafka-node: a pipelined load generator that drives any node program over
its stdin/stdout, a trivial node for the generator's own ceiling, and the suite of issue 4."""
