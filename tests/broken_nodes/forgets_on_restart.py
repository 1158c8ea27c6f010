"""Correct while it runs, but keeps its log and committed offsets in memory only, so a
restart (--restart-every) loses everything acknowledged before it."""

from base import Node

if __name__ == "__main__":
    Node().serve()
