"""The exit statuses of `maelstrom-kafka-test`, Jepsen's (jepsen.cli): 0 valid, 1 invalid, 2
unknown, 254 bad arguments, 255 the tool itself failed; and the parser that exits with 254."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

VALID = 0
INVALID = 1  # either verdict failed, or the test was aborted
UNKNOWN = 2  # Maelstrom's analysis would stop with an error, and nothing failed
INTERRUPTED = 130  # SIGINT or SIGTERM; what was recorded until then is still written
BAD_ARGUMENTS = 254  # bad flags, a --bin that is not a program, a history that cannot be read
CRASHED = 255  # the runner itself failed, or the node could not be started (Maelstrom: a crash of the test)

#: What --help says of them.
DESCRIBED = ("Exit status, as Jepsen's: 0 if both verdicts pass, 1 if either fails (or the test was "
             "aborted), 2 if Maelstrom's verdict is unknown and nothing failed, 254 for bad arguments, "
             "255 if the runner itself failed or a node could not be started, 130 if interrupted.")


def of(validity: bool | str) -> int:
    """The status of a verdict given as Jepsen's :valid? (True, False or "unknown")."""
    if validity is True:
        return VALID
    return UNKNOWN if validity == "unknown" else INVALID


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with 254, as Jepsen's do."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(BAD_ARGUMENTS, f"{self.prog}: error: {message}\n")
