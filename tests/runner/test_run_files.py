"""The run directory's files hold whatever a node prints: control characters, tabs and markup
in its replies leave messages.svg and timeline.html well-formed and history.txt one op a line."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import edn_format

from kafka_node.maelstrom import jepsen_store, messages_svg, timeline
from kafka_node.maelstrom.history import Op
from kafka_node.maelstrom.journal import Journal

#: What a node may put in an error's text: XML's forbidden characters, markup, a tab, a newline.
NASTY = 'bad \x01\x1f <script>alert("x")</script> & \t tab \n line \ufffe'


def test_messages_svg_stays_well_formed_whatever_the_node_writes(tmp_path):
    journal = Journal()
    body = f'{{"type":"error","code":13,"text":{edn_format.dumps(NASTY)},"in_reply_to":1}}'.encode()
    sent = journal.sent("n0", "c1", "error", body, 0.5)
    assert sent is not None
    sent.received = 0.5
    dropped = journal.sent("n0", "n1", f"gossip{NASTY}", b'{"type":"x"}', 0.6)
    assert dropped is not None
    dropped.dropped = True
    messages_svg.write(journal.messages, journal.truncated, tmp_path / "messages.svg")
    svg = ElementTree.parse(tmp_path / "messages.svg").getroot()  # raises on anything XML forbids
    titles = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert any("<script>" in title for title in titles), "the text is shown, as text"
    assert not any(ch in "".join(titles) for ch in "\x01\x1f\ufffe")
    colors = {line.get("stroke") for line in svg.iter("{http://www.w3.org/2000/svg}line")}
    assert messages_svg.ERROR_COLOR in colors


def ops_with_a_nasty_error() -> list[Op]:
    return [Op(index=0, time=1, process=0, client="c1", type="invoke", f="send", value={"key": "1", "msg": 1}),
            Op(index=1, time=2, process="nemesis", type="info", f="start-partition", value="one"),
            Op(index=2, time=3, process=0, client="c1", type="info", f="send", value={"key": "1", "msg": 1},
               error=NASTY)]


def test_the_timeline_stays_well_formed_and_shows_the_error_as_text(tmp_path):
    timeline.write(ops_with_a_nasty_error(), tmp_path / "timeline.html")
    page = (tmp_path / "timeline.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not any(ch in page for ch in "\x01\x1f\ufffe")
    assert re.search(r'id="i1" style="width:100px;left:0px', page), "the nemesis' column comes first"
    assert re.search(rf'id="i2" style="width:100px;left:{timeline.GUTTER}px', page)


def test_history_txt_keeps_one_operation_per_line_and_its_columns(tmp_path):
    ops = ops_with_a_nasty_error()
    jepsen_store.write_history_txt(ops, tmp_path / "history.txt")
    rows = [line.split("\t") for line in (tmp_path / "history.txt").read_text().splitlines()]
    assert [len(row) for row in rows] == [4, 4, 5]
    assert rows[1][:3] == [":nemesis", ":info", ":start-partition"] and rows[1][3] == ":one"
    assert rows[2][4].startswith("bad ") and "line" in rows[2][4]


def test_results_edn_names_the_verdict_as_jepsen_and_keeps_node_ids_as_strings(tmp_path):
    data = {"valid": False, "validity": "unknown", "run": {"partitions": {"periods": [
        {"spec": "one", "grudge": {"n0": ["n1"], "n1": ["n0"]}}]}}}
    jepsen_store.write_results_edn(data, tmp_path / "results.edn")
    found = edn_format.loads((tmp_path / "results.edn").read_text())
    key = edn_format.Keyword
    assert next(iter(found)) == key("valid?") and found[key("valid?")] == key("unknown")
    period = found[key("run")][key("partitions")][key("periods")][0]
    grudge = period[key("grudge")]
    assert set(grudge) == {"n0", "n1"} and list(grudge["n0"]) == ["n1"]
