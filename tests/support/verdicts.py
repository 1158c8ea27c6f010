"""What a correct node's run may get from the runner, shared by the tests that run one."""

from __future__ import annotations

import json
from typing import Any

from kafka_node.maelstrom import report


def assert_correct_node_verdict(data: dict[str, Any], *, status: int | None = None, stdout: str | None = None,
                                stricter: tuple[str, ...] = ()) -> bool:
    """Assert that `data` (results.json, or `check --json`) is what a correct node's run gets,
    and, when given, the exit status and summary that go with it; whether Maelstrom's verdict
    was valid.

    Maelstrom's verdict is valid, or invalid only by unseen cases whose keys no final-phase
    assign named: a fresh key first acknowledged after Maelstrom's generator stopped tracking
    keys is never polled by the final polls, whatever the node does, and real Maelstrom
    reports it too. Everything else is held strictly: no other anomaly, no analysis error, no
    abort, and our stricter checks failing with exactly `stricter`."""
    said = (f"exit {status}\n{stdout}" if stdout is not None else
            json.dumps({name: data.get(name) for name in ("valid", "maelstrom", "stricter", "anomalies", "aborted")},
                       ensure_ascii=False)[:4000])
    maelstrom = data["maelstrom"]
    explained = maelstrom["valid"] is False and maelstrom["anomaly_types"] == ["unseen"]
    if explained:
        assert maelstrom["unseen_only_untracked_keys"] is True, said
        assert all(case["key_in_final_assign"] is False for case in data["anomalies"]["unseen"]), said
    else:
        assert maelstrom["valid"] is True and maelstrom["anomaly_types"] == [], said
        assert maelstrom["unseen_only_untracked_keys"] is False, said
    assert maelstrom["analysis_errors"] == [], said
    assert data["stricter"] == {"valid": not stricter, "anomaly_types": list(stricter)}, said
    assert data["anomaly_types"] == [*(["unseen"] if explained else []), *stricter], said
    assert data["valid"] is (not explained and not stricter), said
    assert data.get("aborted") is None, said
    if status is not None:
        assert status == (0 if data["valid"] else 1), said
    if stdout is not None:
        lines = stdout.rstrip().splitlines()
        if explained:
            assert "Maelstrom's verdict: invalid (unseen)" in lines and f"  {report.UNTRACKED_UNSEEN}" in lines, said
        else:
            assert "Maelstrom's verdict: valid" in lines, said
        assert ("our stricter checks: " + (f"failed ({', '.join(stricter)})" if stricter else "passed")) in lines, said
        assert lines[-1] == (report.BAD if explained else report.STRICTER_BAD if stricter else report.GOOD), said
    return not explained
