"""bench/report_issue16.py - the issue-16 rows of the benchmark report:
bulk TCP with divert.OFFLOAD (bench/offload_bench.sh) and idle round trips
with --busy-poll (bench/busy_poll_bench.sh). Imported by bench/report.py,
which passes its num/fmt/ratio/table helpers.
"""


def section(out, r, num, fmt, ratio, table):
    """Section 6: the tables, when the rows ran."""
    if "offload.ld_mbps" in r:
        n, o = num(r, "offload.none_mbps"), num(r, "offload.ld_mbps")
        out.append("## 6. Bulk TCP with divert.OFFLOAD (iperf3 over a veth, bench/offload_bench.sh)")
        out.append("")
        out.append(f"Median of {r.get('offload.runs', '?')} runs of {r.get('offload.seconds', '?')} s, "
                   "alternating. luadivert diverts the iperf3 port at the receiver's input and "
                   "offloads every connection at its first packet; it saw "
                   f"{r.get('offload.received', '?')} packets in all.")
        out.append("")
        out += table(["config", "Mbit/s", "ratio to no queue"],
                     [["no queue", fmt(n), "1.00"], ["luadivert, divert.OFFLOAD", fmt(o), ratio(o, n)]])
        out.append("")
    if "busy.ld_busy_p50" in r:
        out.append("## 7. Idle round trips with --busy-poll (udpping 1000/s, bench/busy_poll_bench.sh)")
        out.append("")
        out.append(f"Median over {r.get('busy.rounds', '?')} interleaved rounds of 500 pings; "
                   f"--busy-poll {r.get('busy.us', '?')} (the window covers the 1 ms between pings).")
        out.append("")
        rows = []
        for k, name in (("bare", "bare C, batched"), ("ld", "luadivert pass-all"),
                        ("ld_busy", "luadivert pass-all --busy-poll")):
            rows.append([name, fmt(num(r, f"busy.{k}_p50"), 1), fmt(num(r, f"busy.{k}_p99"), 1)])
        out += table(["reader", "p50 us", "p99 us"], rows)
        out.append("")


def goals(r, num):
    """(text, ok or None, miss) for each goal of issue 16 that these rows measure."""
    res = []
    n, o = num(r, "offload.none_mbps"), num(r, "offload.ld_mbps")
    res.append(("bulk TCP with divert.OFFLOAD: >= 0.95x no queue (issue 16)"
                + (f" ({o / n:.2f}x, {o:.0f} vs {n:.0f} Mbit/s)" if n and o is not None else ""),
                None if not n or o is None else o >= 0.95 * n,
                f"bulk TCP with offload reaches {o / n:.2f}x of no queue." if n and o is not None else ""))
    b, l = num(r, "busy.bare_p50"), num(r, "busy.ld_busy_p50")
    res.append(("idle latency p50 with --busy-poll: <= bare C's (issue 16)"
                + (f" ({l:.1f} vs {b:.1f} us)" if b is not None and l is not None else ""),
                None if b is None or l is None else l <= b,
                f"idle p50 with --busy-poll is {l - b:.1f} us over bare C's."
                if b is not None and l is not None else ""))
    return res
