"""What a run reports: performance figures, results.json, and the summary printed at the end,
anomalies described in words."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec

from kafka_node.clientkit.percentiles import percentiles
from kafka_node.maelstrom.checker import UNKNOWN, Verdict
from kafka_node.maelstrom.client import ERROR_NAMES
from kafka_node.maelstrom.history import FAIL, INFO, OK, Op, pairs
from kafka_node.maelstrom.hostile import HOSTILE_ACCEPTED

log = logging.getLogger("kafka_node.maelstrom.run")

#: Jepsen's last line for each verdict (jepsen/src/jepsen/core.clj), and ours.
GOOD = "Everything looks good! ヽ(‘ー`)ノ"
BAD = "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻"
UNKNOWN_LINE = "Errors occurred during analysis, but no anomalies found. ಠ~ಠ"
STRICTER_BAD = "Stricter checks failed! (ﾉಥ益ಥ）ﾉ ┻━┻"
ABORTED = "Test aborted! (ﾉಥ益ಥ）ﾉ ┻━┻"
#: Said under unseen when no final poll asked for any of its keys (a quirk of Maelstrom's generator).
UNTRACKED_UNSEEN = ("all of them are explained by Maelstrom's generator: each key was first acknowledged after "
                    "the generator stopped tracking keys, so the final polls never asked for it "
                    "(Maelstrom reports them too, whatever the node does)")
#: Cases kept per anomaly type in results.json, and shown in the summary.
KEPT_CASES = 32
SHOWN_CASES = 3
OUTCOMES = (OK, FAIL, INFO)


def quantiles(samples: list[float]) -> dict[str, float]:
    """Count and p50/p95/p99/max (nearest rank) of latencies given in seconds, in ms."""
    return {"count": len(samples), **{name: round(seconds * 1000, 3) for name, seconds in percentiles(samples).items()}}


def performance(ops: list[Op], by_rpc: dict[str, list[tuple[float, float]]],
                phases: dict[str, float]) -> dict[str, Any]:
    """Throughput of the main phase and of the whole run; latency per RPC and per operation."""
    main_start, main_end = phases.get("main", 0.0), phases.get("recovery", phases.get("end", 0.0))
    completions = [(inv, op) for inv, op in pairs(ops) if op.f != "crash"]
    in_main = sum(1 for inv, op in completions if inv and main_start <= inv.time / 1e9 < main_end)
    by_f: dict[str, list[float]] = defaultdict(list)
    for inv, op in completions:
        if inv and op.type == OK:
            by_f[op.f].append((op.time - inv.time) / 1e9)
    end = phases.get("end", 0.0)
    return {
        "main_phase_ops_per_s": round(in_main / max(1e-9, main_end - main_start), 1),
        "overall_ops_per_s": round(len(completions) / max(1e-9, end), 1),
        "rpc_latency_ms": {rpc: quantiles([lat for _, lat in samples]) for rpc, samples in sorted(by_rpc.items())},
        "ok_op_latency_ms": {f: quantiles(samples) for f, samples in sorted(by_f.items())},
    }


def verdict_data(verdict: Verdict) -> dict[str, Any]:
    """Both verdicts as results.json and `check --json` give them: anomaly type -> cases
    (at most KEPT_CASES each; `anomaly_counts` has the full counts). `unseen_only_untracked_keys`
    marks a Maelstrom verdict whose unseen cases all come from its generator (see
    `Verdict.unseen_only_untracked_keys`)."""
    return {
        "valid": verdict.valid,
        "validity": verdict.validity,
        "maelstrom": {"valid": verdict.maelstrom_valid, "anomaly_types": verdict.maelstrom_types,
                      "analysis_errors": verdict.analysis_errors[:KEPT_CASES],
                      "unseen_only_untracked_keys": verdict.unseen_only_untracked_keys},
        "stricter": {"valid": verdict.stricter_valid, "anomaly_types": verdict.stricter_types},
        "anomaly_types": list(verdict.anomalies),
        "anomaly_counts": {name: len(cases) for name, cases in verdict.anomalies.items()},
        "anomalies": {name: cases[:KEPT_CASES] for name, cases in verdict.anomalies.items()},
        "stats": verdict.stats,
        **({"availability": verdict.availability} if verdict.availability else {}),
    }


def results(verdict: Verdict, perf: dict[str, Any], run: dict[str, Any], aborted: str | None) -> dict[str, Any]:
    return {**verdict_data(verdict), "aborted": aborted, "perf": perf, "run": run}


def partitions_data(periods: list[Any], dropped: int) -> dict[str, Any]:
    """What results.json says of the partitions: how many, how many cut anything (a third of
    three nodes is none), the messages they dropped, and each period."""
    return {"count": len(periods), "cutting": sum(1 for p in periods if p.cut), "dropped_messages": dropped,
            "periods": [{"start": p.start, "end": p.end, "spec": p.spec, "grudge": p.grudge, "dropped": p.dropped}
                        for p in periods]}


def disk_losses_data(losses: list[Any]) -> dict[str, Any]:
    """What results.json says of --lose-disk: how many times a killed node's files were
    deleted, how many files and bytes in all, and each loss (node, time, whose kill)."""
    return {"count": len(losses), "files_deleted": sum(loss.files for loss in losses),
            "bytes_deleted": sum(loss.bytes for loss in losses),
            "losses": [{"node": loss.node, "at": loss.at, "by": loss.by, "files": loss.files, "bytes": loss.bytes}
                       for loss in losses]}


def log_settings(run: dict[str, Any]) -> None:
    log.info("test: %s", msgspec.json.encode(run).decode())


def log_summary(summary: str) -> None:
    for line in summary.splitlines():
        log.info("%s", line)


def write_results(path: Path, data: dict[str, Any]) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n")


# --- the summary ---------------------------------------------------------------------------

def summary(data: dict[str, Any], run_dir: Path) -> str:
    run, perf = data["run"], data["perf"]
    lines = [f"kafka test: {run['command']}", f"run directory: {run_dir}", ""]
    lines += stats_table(data["stats"])
    lines.append(f"throughput: {perf['main_phase_ops_per_s']} op/s in the main phase "
                 f"({run['time_limit']:g} s at --rate {run['rate']:g}); {perf['overall_ops_per_s']} op/s overall")
    lines += ["", f"{'latency (ms)':<24}{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"]
    for rpc, q in perf["rpc_latency_ms"].items():
        lines.append(f"{rpc:<24}{q['count']:>8}"
                     + "".join(f"{q.get(n, 0):>9.2f}" for n in ("p50", "p95", "p99", "max")))
    if net := data.get("net"):
        lines.append("")
        lines += net_lines(net)
    if run.get("restart_every"):
        lines.append(f"\nnode restarts (SIGKILL): {len(run['restarts'])}")
    if partitions := run.get("partitions"):
        healed = ("healed before the recovery pause" if "recovery" in run.get("phases", {}) else
                  "the run ended before the final heal")
        lines.append(f"\npartitions: {partitions['count']} ({partitions['cutting']} cutting any link), "
                     f"{partitions['dropped_messages']} messages dropped; {healed}")
    lines += db_fault_lines(run)
    if availability := data.get("availability"):
        lines.append(f"availability: {availability['ok_fraction']:.4f} of operations ok "
                     f"({availability['ok']} of {availability['invoked']}); asked: {availability['expected']}")
    if hostile := run.get("hostile"):
        lines.append(hostile_summary(hostile))
    if (memory := run.get("memory")) and "rss_mib" in memory:
        lines.append(memory_summary(memory))
    for note in run.get("node_exits", []):
        if note != data["aborted"]:
            lines.append(f"\nwarning: {note}")
    for note in run.get("notes", []):
        lines.append(f"note: {note}")
    lines.append("")
    lines += verdict_lines(data)
    if data["aborted"]:
        lines[-1] = ABORTED
    return "\n".join(lines)


def db_fault_lines(run: dict[str, Any]) -> list[str]:
    """The kill and pause nemeses and disk loss, as the partitions are summed up."""
    lines = []
    final = "recovery" in run.get("phases", {})
    if kills := run.get("kills"):
        lines.append(f"kills: {kills['count']} ({kills['effective']} killing any node, {kills['nodes_hit']} nodes in "
                     f"all), {kills['dropped_messages']} messages to killed nodes dropped; "
                     + ("all started again before the recovery pause" if final else "the run ended before the final start"))
    if pauses := run.get("pauses"):
        lines.append(f"pauses: {pauses['count']} ({pauses['effective']} pausing any node, {pauses['nodes_hit']} nodes "
                     "in all); " + ("all resumed before the recovery pause" if final else
                                    "the run ended before the final resume"))
    if (losses := run.get("disk_losses")) is not None:
        lines.append(f"disk losses (--lose-disk): {losses['count']}, {losses['files_deleted']} files "
                     f"({losses['bytes_deleted']} bytes) deleted")
        if any(loss["files"] == 0 for loss in losses["losses"]):
            lines.append("  some found no files to delete: a node keeping its files at an absolute path "
                         "(or in a fresh temporary file) is out of disk loss's reach")
    if lines and not run.get("partitions"):
        lines[0] = "\n" + lines[0]
    return lines


def net_lines(net: dict[str, Any]) -> list[str]:
    """Maelstrom's network statistics: messages by who they were between, and per operation;
    with latency, what was drawn and what delivery did to order."""
    lines = [f"{'messages':<10}{'sent':>10}{'received':>10}{'per op':>10}"]
    for group in ("all", "clients", "servers"):
        counts = net[group]
        per_op = f"{counts['msgs-per-op']:>10.3f}" if "msgs-per-op" in counts else ""
        lines.append(f"{group:<10}{counts['send-count']:>10}{counts['recv-count']:>10}{per_op}")
    latency, delivery = net.get("latency"), net.get("delivery")
    if latency and latency["mean_ms"] and delivery:
        drawn = (f"{latency['draws']} draws, mean {latency['draw_mean_ms']:.2f} ms, max {latency['draw_max_ms']} ms"
                 if latency["draws"] else "nothing drawn")
        lines.append(f"latency: {latency['dist']}, mean {latency['mean_ms']} ms: {drawn}")
        fraction = delivery["overtaken_fraction"] or 0.0
        held = delivery["client_requests_held"]
        lines.append(f"  overtaken: {delivery['overtaken']} of {delivery['delivered_between_servers']} messages "
                     f"between servers delivered ({fraction:.2%}) arrived after a later one of the same pair")
        if held["count"]:
            lines.append(f"  client requests held back behind a draw: {held['held']} of {held['count']} "
                         f"(p50 {held['p50']:.2f} / p99 {held['p99']:.2f} / max {held['max']:.2f} ms)")
    return lines


def stats_table(stats: dict[str, dict[str, int]]) -> list[str]:
    lines = [f"{'operation':<10}{'ok':>8}{'fail':>8}{'info':>8}"]
    for f, counts in sorted(stats.items()):
        lines.append(f"{f:<10}" + "".join(f"{counts.get(kind, 0):>8}" for kind in OUTCOMES))
    return lines


def verdict_lines(data: dict[str, Any]) -> list[str]:
    """Maelstrom's verdict and our stricter checks, each anomaly type with a few cases in
    words, and the last line: Jepsen's for Maelstrom's verdict, ours when only the stricter
    checks failed."""
    maelstrom, stricter = data["maelstrom"], data["stricter"]
    if maelstrom["valid"] is True:
        said = "valid"
    elif maelstrom["valid"] == UNKNOWN:
        said = "unknown: Jepsen's kafka analysis would stop with an error on this history"
    else:
        said = "invalid (" + ", ".join(maelstrom["anomaly_types"]) + ")"
    lines = [f"Maelstrom's verdict: {said}",
             "our stricter checks: " + ("passed" if stricter["valid"] else
                                        "failed (" + ", ".join(stricter["anomaly_types"]) + ")")]
    for error in maelstrom["analysis_errors"][:SHOWN_CASES]:
        lines.append(f"  analysis error: {describe_error(error)}")
    for name in data["anomaly_types"]:
        count, cases = data["anomaly_counts"][name], data["anomalies"][name]
        lines.append(f"{name}: {count}")
        lines += [f"  {describe(name, case)}" for case in cases[:SHOWN_CASES]]
        if count > SHOWN_CASES:
            lines.append(f"  ... ({count - SHOWN_CASES} more; up to {KEPT_CASES} in results.json)")
        if name == "unseen" and maelstrom.get("unseen_only_untracked_keys"):
            lines.append(f"  {UNTRACKED_UNSEEN}")
    if maelstrom["valid"] is False:
        lines.append(BAD)
    elif maelstrom["valid"] == UNKNOWN:
        lines.append(UNKNOWN_LINE)
    else:
        lines.append(GOOD if stricter["valid"] else STRICTER_BAD)
    return lines


def hostile_summary(hostile: dict[str, Any]) -> str:
    """The hostile lines written and the replies to them, by error code, on two lines."""
    codes = ", ".join(f"{_code_name(code)} x {n}" for code, n in hostile["replies_by_code"].items())
    return (f"\nhostile lines (--hostile-every {hostile['every']:g}): {hostile['sent']} sent, "
            f"{len(hostile['sent_by_kind'])} kinds (hostile.jsonl)\n"
            f"replies to {hostile['client']}: {hostile['replies']} ({codes or 'none'}); "
            f"accepted: {hostile['accepted']}")


def _code_name(code: str) -> str:
    """`12 malformed-request` for an error code; a reply type (or anything else) as it is."""
    name = ERROR_NAMES.get(int(code)) if code.isdigit() else None
    return f"{code} {name}" if name else code


def memory_summary(memory: dict[str, Any]) -> str:
    rss = memory["rss_mib"]
    return (f"node memory (VmRSS): start {rss['start']:.1f} MiB, max {rss['max']:.1f} MiB, end {rss['end']:.1f} MiB; "
            f"peak VmHWM {memory['hwm_max_mib']:.1f} MiB ({memory['samples']} samples of "
            f"{memory['processes']} process{'es' if memory['processes'] != 1 else ''}, {memory['file']})")


def _op(ref: dict[str, Any] | None) -> str:
    if ref is None:
        return "no recorded op"
    who = f"{ref['client']} " if ref.get("client") else f"process {ref['process']} "
    return f"op #{ref['index']} ({who}{ref['f']} {ref['type']} at {ref['time'] / 1e9:.3f} s)"


def _values(values: list[Any]) -> str:
    shown = ", ".join(map(repr, values[:5]))
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def describe_error(error: dict[str, Any]) -> str:
    """Why Jepsen's analysis would stop, in a sentence."""
    key, ops = f"key {error.get('key')!r}", error.get("ops", [])
    if error["error"] == "no-writer-of-value":
        return (f"{key} value {error['value']!r} was polled ({_op(ops[0])}) but no send of it was ever "
                "attempted (Jepsen throws :no-writer-of-value)")
    if error["error"] == "offset-too-large":
        return (f"{key} has offset {error['offset']}: Jepsen builds a vector that long for the key and "
                "cannot")
    if error["error"] == "no-final-polls":
        return (f"the history ends with {_op(ops[0])}, not with final polls: Jepsen's unseen plot reads the "
                "time of a final poll that is not there (NullPointerException)")
    return (f"{key}: acknowledged polls never read a message of it at a known offset, only empty lists "
            f"({_op(ops[0])}); Jepsen's lost-write analysis throws IndexOutOfBoundsException")


def describe(name: str, case: dict[str, Any]) -> str:
    """One anomaly case in a sentence."""
    ops = case.get("ops", [])
    key = f"key {case.get('key')!r}"
    if name == "inconsistent-offsets":
        return f"{key} offset {case['offset']} holds values {_values(case['values'])}"
    if name == "duplicate":
        return f"{key} value {case['value']!r} is at offsets {case['offsets']}"
    if name == "lost-write":
        return (f"{key} value {case['value']!r} at offset {case['offset']} was sent ({_op(case['writer'])}) but "
                f"never polled, though polls reached past it ({_op(case['max-read'])})")
    if name == "unseen":
        untracked = "; no final poll asked for this key" if case.get("key_in_final_assign") is False else ""
        return (f"{key}: {case['count']} acknowledged message{'s' if case['count'] != 1 else ''} never polled "
                f"(values {_values(case['values'])}){untracked}")
    if name == "nonmonotonic-send":
        return (f"{key}: process {ops[0]['process']} sent {case['values'][0]!r} at offset {case['offsets'][0]}, "
                f"then {case['values'][1]!r} at offset {case['offsets'][1]} ({_op(ops[0])}; {_op(ops[1])})")
    if name in ("poll-skip", "nonmonotonic-poll"):
        verb = f"skipping values {_values(case['skipped'])}" if name == "poll-skip" else "going backwards"
        return (f"{key}: process {ops[1]['process']} polled up to offset {case['offsets'][0]}, then its next poll "
                f"started at offset {case['offsets'][1]}, {verb} ({_op(ops[0])}; {_op(ops[1])})")
    if name in ("int-poll-skip", "int-nonmonotonic-poll"):
        verb = (f"skipping values {_values(case['skipped'])}" if name == "int-poll-skip" else "going backwards")
        return (f"{key}: one poll went from offset {case['offsets'][0]} to {case['offsets'][1]}, {verb} "
                f"({_op(case['op'])})")
    if name == "G1a":
        return (f"{key} value {case['value']!r}: its send failed ({case['writer'].get('error')}), yet "
                f"{_op(case['reader'])} polled it at offset {case['offset']}")
    if name in ("G1c-realtime", "strong-PL-2-cycle-exists"):
        writer, reader = case["cycle"]
        return (f"{key} value {case['value']!r} was polled ({_op(reader)}) before its send began "
                f"({_op(writer)})")
    if name in ("asked-offset-skip", "asked-offset-nonmonotonic"):
        verb = ("skipping offsets " + ", ".join(str(s["offset"]) for s in case["skipped"][:5])
                if name == "asked-offset-skip" else "before it")
        return (f"{key}: a poll asked from offset {case['asked']}, but the reply started at offset "
                f"{case['offset']}, {verb} ({_op(case['op'])})")
    if name == "unasked-key":
        return (f"{key}: {_op(case['op'])} returned offsets {case['offsets']} of it, though the poll did not ask "
                f"for that key (it asked for {case['asked_keys']} keys)")
    if name == "committed-offset-regression":
        listed = "nothing" if case["listed"] is None else f"offset {case['listed']}"
        return (f"{key}: a commit of offset {case['committed']} was acknowledged ({_op(ops[0])}), "
                f"yet a later list_committed_offsets returned {listed} ({_op(ops[1])})")
    if name == HOSTILE_ACCEPTED:
        asked = f"{case['kind']} request {case['request']!r}" if case.get("request") else "a hostile line"
        return f"at {case['time']:.3f} s the node answered {case['reply']!r} to the invalid {asked}"
    if name in ("aborted", "empty-transaction-graph"):
        return case["reason"]
    if name == "unknown-destination":
        return f"{case['src']} sent a message to {case['dest']!r}, which no client, node or service is: {case['line']}"
    if name == "availability":
        wanted = "all of them" if case["expected"] == "total" else f"at least {float(case['expected']):g}"
        return (f"only {case['ok']} of {case['invoked']} operations completed ok ({case['ok_fraction']:.4f}); "
                f"--availability asks for {wanted}")
    if name == "stats":
        return f"no successful {case['f']} ({case.get(OK, 0)} ok, {case.get(FAIL, 0)} fail, {case.get(INFO, 0)} info)"
    return msgspec.json.encode(case).decode()
