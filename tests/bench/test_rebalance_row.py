"""Row v's reading of a run's logs: when a restarted node led its own partition again, and who led
what at the end; on logs written as the runner and our nodes write them."""

from __future__ import annotations

from kafka_node.bench import rebalance


def write_run(run_dir, runner_lines, node_lines):
    (run_dir / "node-logs").mkdir(parents=True)
    (run_dir / "jepsen.log").write_text("\n".join(runner_lines) + "\n")
    for node, lines in node_lines.items():
        (run_dir / "node-logs" / f"{node}.log").write_text("\n".join(lines) + "\n")


def lin_kv_set(at, pid, leader, epoch):
    return (f"2026-12-07 10:00:{at} INFO kafka_node.replication: partition {pid}: lin-kv set leader={leader} "
            f"epoch={epoch} isr=n0,n1,n2 elr= version={epoch + 3}")


def started(at, node):
    return f"2026-12-07 10:00:{at} INFO {node} started (pid 1) and answered init"


def test_a_restart_after_which_another_led_counts_until_the_node_leads_its_partition_again(tmp_path):
    write_run(tmp_path, [started("00,100", "n0"), started("00,110", "n1"), started("00,120", "n2"),
                         "2026-12-07 10:00:01,000 INFO n0 killed (SIGKILL) by the kill nemesis",
                         started("05,000", "n0"),  # n1 led partition 0 meanwhile
                         "2026-12-07 10:00:08,000 INFO n2 killed (SIGKILL) by the kill nemesis",
                         started("08,200", "n2")],  # it resumed its own lead: nothing moved
              {"n0": [lin_kv_set("00,200", 0, "n0", 1), lin_kv_set("06,600", 0, "n0", 3)],
               "n1": [lin_kv_set("00,210", 1, "n1", 1), lin_kv_set("01,700", 0, "n1", 2)],
               "n2": [lin_kv_set("00,220", 2, "n2", 1), lin_kv_set("08,300", 2, "n2", 2)]})
    leads = rebalance.read(tmp_path, ["n0", "n1", "n2"])
    assert leads.back_after == [1.6]
    assert (leads.preferred_at_end, leads.partitions, leads.leader_changes) == (3, 3, 2)


def test_a_lead_never_taken_back_counts_as_never_and_as_not_preferred_at_the_end(tmp_path):
    write_run(tmp_path, [started("00,100", "n0"), started("05,000", "n0")],
              {"n0": [lin_kv_set("00,200", 0, "n0", 1)], "n1": [lin_kv_set("01,700", 0, "n1", 2)],
               "n2": []})
    data = rebalance.read(tmp_path, ["n0", "n1", "n2"]).as_data()
    assert (data["back_after"], data["never_back"], data["preferred_at_end"]) == ([None], 1, 0)
    assert data["back_max_s"] is None, "a node never back is no maximum: the row shows a miss"
