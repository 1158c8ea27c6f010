"""What the test runner and the benchmark share as clients of a node program: the wire types,
the child process, JSON lines, percentiles and /proc; never any module of the node itself."""
