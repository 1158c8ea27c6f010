"""The node's line splitter, fed chunks as stdin delivers them: every line whole, whatever the
chunk boundaries, and a line over the limit reported once, by its head, with the lines after it
kept whole."""

from __future__ import annotations

import pytest

from kafka_node.framing import LineSplitter, Oversized


def split(chunks: list[bytes], max_line_bytes: int) -> list[bytes | Oversized]:
    splitter = LineSplitter(max_line_bytes)
    lines: list[bytes | Oversized] = []
    for chunk in chunks:
        lines += [bytes(line) if not isinstance(line, Oversized) else line for line in splitter.feed(chunk)]
    return lines + [bytes(line) for line in splitter.end()]


@pytest.mark.parametrize("cut", range(1, 12))
def test_lines_are_whole_wherever_the_chunks_are_cut(cut):
    text = b'{"a":1}\n{"b":22}\n{"c":3'
    assert split([text[:cut], text[cut:]], 100) == [b'{"a":1}', b'{"b":22}', b'{"c":3']


def test_a_line_over_the_limit_is_reported_once_by_its_head_and_the_lines_after_it_are_whole():
    long = b"x" * 50
    # the long line streams in over three chunks; the line after it is cut across two more
    lines = split([b"first\n" + long[:20], long[20:40], long[40:] + b"\nsec", b"ond\nthird\n"], 30)
    # reported as soon as what has come of it passes the limit (40 bytes, after two chunks)
    assert lines == [b"first", Oversized(long[:40]), b"second", b"third"]


def test_a_chunk_over_the_limit_reports_each_long_line_and_keeps_the_short_ones():
    assert split([b"ok\n" + b"y" * 40 + b"\nfine\n" + b"z" * 40 + b"\n"], 30) == [
        b"ok", Oversized(b"y" * 40), b"fine", Oversized(b"z" * 40)]


def test_a_long_line_arriving_in_many_chunks_without_a_newline_is_reported_once():
    assert split([b"w" * 40, b"w" * 40, b"w" * 40, b"w\nnext\n"], 30) == [Oversized(b"w" * 40), b"next"]


@pytest.mark.parametrize("chunks", [[b"a" * 30 + b"\n" + b"b" * 31 + b"\n"], [b"a" * 30, b"\n" + b"b" * 31, b"\n"]])
def test_a_line_of_exactly_the_limit_is_kept_and_one_byte_more_is_not(chunks):
    assert split(chunks, 30) == [b"a" * 30, Oversized(b"b" * 31)]
