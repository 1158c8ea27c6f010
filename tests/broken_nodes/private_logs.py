"""A node that keeps a log of its own and never shares it: correct alone, wrong as soon as two
nodes each hand out offset 0 of a key to different messages."""

from base import Node

if __name__ == "__main__":
    Node().serve()
