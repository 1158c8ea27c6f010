"""Correct, but at start it leaves behind a process in a session of its own, which keeps the
node's stdout open after the node is killed (its pid goes to stray.pid in the working
directory): the runner must not wait for that stdout to close forever."""

import subprocess
import sys
from pathlib import Path

from base import Node

if __name__ == "__main__":
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             stdin=subprocess.DEVNULL, start_new_session=True)
    Path("stray.pid").write_text(str(stray.pid))
    Node().serve()
