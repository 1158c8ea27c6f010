"""Value types for argparse shared by the three commands (node, test runner, benchmark):
numbers that must be positive or non-negative, refused with a usage error otherwise."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def availability(text: str) -> float | str:
    """Maelstrom's --availability: "total", or the fraction of operations (0 to 1) that must
    succeed."""
    if text == "total":
        return "total"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'total' or a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be 'total' or a number from 0 to 1, got {text}")
    return value
