"""What the tests share: the installed scripts, a node in a child process, request lines,
reading a log back from its file, and what a correct node's run may get from the runner."""
