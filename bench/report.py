#!/usr/bin/env python3
"""bench/report.py RESULTS NOTES OUT.md - the benchmark table.

Reads the "key value" lines bench/run.sh collected, prints the table on
stdout and writes it as Markdown to OUT.md: every figure absolute and as a
ratio to the bare-C batched loop of the same run, then the goals of issue 8
as PASS/FAIL lines and notes on what missed and by how much.
"""
import os
import platform
import re
import subprocess
import sys
import time

import report_issue16

REF = "bare_batched"
NAMES = {
    "none": "no queue",
    "bare_simple": "bare C, per packet",
    "bare_batched": "bare C, batched (limit)",
    "ld_pass_all": "luadivert pass-all",
    "ld_parse_match": "luadivert parse+match port",
    "ld_rewrite": "luadivert rewrite+checksum",
    "c_divert": "C divert(4) program (tee)",
    "ld_metrics": "luadivert pass-all --metrics (scraped 5/s)",
    "ld_record": "luadivert pass-all --record",
}
ORDER = ["none", "bare_simple", "bare_batched", "ld_pass_all", "ld_parse_match", "ld_rewrite",
         "ld_metrics", "ld_record", "c_divert"]


def load(path):
    r = {}
    with open(path) as f:
        for line in f:
            parts = line.split(None, 1)
            if len(parts) == 2:
                r[parts[0]] = parts[1].strip()
    return r


def num(r, key):
    try:
        v = float(r[key])
    except (KeyError, ValueError):
        return None
    return None if v != v else v   # nan -> None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(v, ref):
    if v is None or not ref:
        return "-"
    return f"{v / ref:.2f}x"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1048576:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    rev = ""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=False).stdout.strip()
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs{mem}, Linux {platform.release()}, "
            f"commit {rev or '?'}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def table(head, rows):
    """Markdown table; the same text reads fine on a terminal."""
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    out = ["| " + " | ".join(str(h).ljust(w[i]) for i, h in enumerate(head)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i])
                                     for i, c in enumerate(row)) + " |")
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: report.py RESULTS NOTES OUT.md")
    r = load(sys.argv[1])
    notes = []
    if os.path.exists(sys.argv[2]):
        with open(sys.argv[2]) as f:
            notes = [l.strip() for l in f if l.strip()]
    out = []
    out.append("# luadivert benchmark results")
    out.append("")
    out.append(f"Machine: {machine()}. Load average {r.get('loadavg_start', '?')} at the start, "
               f"{r.get('loadavg_end', '?')} at the end (other work on the machine shows here and "
               f"makes wall-clock figures noisy). Whole run: {r.get('elapsed_s', '?')} s "
               "(`make bench`, bench/run.sh).")
    out.append("")

    # ---- 1. small packets
    ref_pps = num(r, f"{REF}.drain_pps")
    ref_cpu = num(r, f"{REF}.cpu_ns")
    ref_steady = num(r, f"{REF}.steady_pps")
    small = [c for c in ORDER if f"{c}.steady_pps" in r or f"{c}.drain_pps" in r]
    if small:
        small_packets(out, r, small, ref_pps, ref_cpu, ref_steady)
    tcp_latency_memory(out, r)
    egress(out, r)
    report_issue16.section(out, r, num, fmt, ratio, table)
    workers(out, r)
    goals_and_notes(out, r, notes, ref_pps, ref_cpu)
    text = "\n".join(out)
    print(text)
    with open(sys.argv[3], "w") as f:
        f.write(text + "\n")


def small_packets(out, r, small, ref_pps, ref_cpu, ref_steady):
    out.append("## 1. Small packets: 64-byte UDP/IPv4 through one queue, loopback in a namespace")
    out.append("")
    out.append(f"Median of {r.get('runs', '?')} runs. *Drain*: the reader is stopped, "
               f"{fmt(num(r, 'drain_n'))} packets are queued, and the time the reader takes to "
               "empty the queue gives its own packets/s, with a whole CPU to itself. *Steady*: "
               f"a sender at full speed for {r.get('steady_s', '?')} s, sender and reader sharing "
               "the 2 CPUs (on this machine the sender is usually the limit). CPU is the "
               "reader's CPU time per packet while draining (user/system split from clock ticks); "
               "*pkt/CPU-s* = 10^9 / CPU ns, what the reader would do with a whole CPU, which "
               "other load on the machine does not disturb. Ratios are to bare C batched.")
    out.append("")
    head = ["config", "drain pkt/s", "ratio", "pkt/CPU-s", "CPU ns/pkt", "ratio", "user+sys ns",
            "batch drain/steady", "steady pkt/s", "ratio", "kernel drops q/u"]
    rows = []
    for c in small:
        dp, cpu, sp = num(r, f"{c}.drain_pps"), num(r, f"{c}.cpu_ns"), num(r, f"{c}.steady_pps")
        us, sy = num(r, f"{c}.user_ns"), num(r, f"{c}.sys_ns")
        bd, bs = num(r, f"{c}.batch_drain"), num(r, f"{c}.batch_steady")
        qd, ud = r.get(f"{c}.queue_dropped"), r.get(f"{c}.user_dropped")
        rows.append([NAMES[c], fmt(dp), ratio(dp, ref_pps), fmt(1e9 / cpu) if cpu else "-",
                     fmt(cpu), ratio(cpu, ref_cpu),
                     f"{fmt(us)}+{fmt(sy)}" if us is not None else "-",
                     f"{fmt(bd, 1)}/{fmt(bs, 1)}" if bd is not None else "-",
                     fmt(sp), ratio(sp, ref_steady), f"{qd}/{ud}" if qd is not None else "-"])
    out += table(head, rows)
    out.append("")
    for c in ("bare_batched", "ld_pass_all"):
        if f"{c}.rate80" in r:
            out.append(f"- {NAMES[c]} at 80% of its steady maximum ({fmt(num(r, c + '.rate80'))} "
                       f"pkt/s for 2 s, {fmt(num(r, c + '.rate80_sent'))} sent, queue length 4096): "
                       f"{r[c + '.rate80_drops']} packets dropped by the kernel queue.")
    out.append("")


def tcp_latency_memory(out, r):
    # ---- 2. TCP
    tcp = [c for c in ORDER if f"{c}.tcp_mbps" in r]
    if tcp:
        ref_tcp = num(r, f"{REF}.tcp_mbps")
        none_tcp = num(r, "none.tcp_mbps")
        out.append(f"## 2. Bulk TCP over a veth, queue on the receiving side ({r.get('tcp_tool', '?')})")
        out.append("")
        rows = [[NAMES[c], fmt(num(r, f'{c}.tcp_mbps')), ratio(num(r, f'{c}.tcp_mbps'), ref_tcp),
                 ratio(num(r, f'{c}.tcp_mbps'), none_tcp), r.get(f'{c}.tcp_queue_dropped', '-')]
                for c in tcp]
        out += table(["config", "Mbit/s", "ratio to bare C", "ratio to no queue", "queue drops"], rows)
        out.append("")

    # ---- 3. latency
    lat = [c for c in ORDER if f"{c}.lat_idle_p50" in r]
    if lat:
        out.append("## 3. Added latency: UDP round trips at 1000/s (udpping), the request queued")
        out.append("")
        out.append(f"Idle, then with {fmt(num(r, 'load_pps'))} pkt/s of background load through the "
                   "same queue (50% of the bare-C steady maximum). Microseconds; in brackets the "
                   "ratio to bare C batched and the difference in microseconds. Medians of 3 rounds "
                   "of 500 round trips.")
        out.append("")
        rows = []
        for c in lat:
            row = [NAMES[c]]
            for phase in ("idle", "load"):
                for k in ("p50", "p99", "max"):
                    v = num(r, f"{c}.lat_{phase}_{k}")
                    b = num(r, f"{REF}.lat_{phase}_{k}")
                    d = (f" ({v / b:.2f}x, {v - b:+.1f})"
                         if v is not None and b and c != REF else "")
                    row.append(f"{fmt(v, 1)}{d}")
            row.append(r.get(f"{c}.lat_lost", "-"))
            rows.append(row)
        out += table(["config", "idle p50", "idle p99", "idle max", "load p50", "load p99",
                      "load max", "lost"], rows)
        out.append("")

    # ---- 4. memory
    mem = [c for c in ORDER if c.startswith("ld_") and f"{c}.vmhwm_kb" in r]
    out.append("## 4. Memory")
    out.append("")
    for c in mem:
        out.append(f"- {NAMES[c]}: peak RSS (VmHWM) {fmt(num(r, c + '.vmhwm_kb'))} KiB, "
                   f"{ratio(num(r, c + '.vmhwm_kb'), num(r, REF + '.vmhwm_kb'))} bare C batched's "
                   f"{fmt(num(r, REF + '.vmhwm_kb'))} KiB.")
    growth = None
    if "ld_heap.end_kb" in r:
        w, e = num(r, "ld_heap.warm_kb"), num(r, "ld_heap.end_kb")
        n, at = num(r, "ld_heap.packets"), num(r, "ld_heap.warm_at")
        if None not in (w, e, n, at) and w >= 0 and n > at:
            growth = (e - w) * 1024 / (n - at)
        out.append(f"- Lua heap (collector stopped after {fmt(at)} packets): "
                   f"{r.get('ld_heap.init_kb')} KiB at start, {r.get('ld_heap.warm_kb')} KiB after "
                   f"warm-up, {r.get('ld_heap.end_kb')} KiB after {fmt(n)} packets: "
                   f"{fmt(growth, 4)} bytes per packet. Peak RSS of that run "
                   f"{fmt(num(r, 'ld_heap.vmhwm_kb'))} KiB.")
    if not mem and "ld_heap.end_kb" not in r:
        out.append("- (no luadivert run)")
    out.append("")
    r["_growth"] = growth


def workers(out, r):
    """Section 7: --workers N against N bare-C loops (bench/workers_scaling.sh, issue 16)."""
    if "workers.max" not in r:
        return
    top = int(num(r, "workers.max"))
    ncpu = int(num(r, "workers.ncpu") or 0)
    out.append("## Many cores: `--workers N` (bench/workers_scaling.sh)")
    out.append("")
    out.append(f"Drain of {r.get('workers.drain_n', '?')} 64-byte packets spread by "
               "`--queue-balance` over N queues; median of "
               f"{r.get('workers.runs', '?')} alternating rounds; {ncpu} CPUs. "
               "Bare C = N bench/bare_nfq_batched loops, one per queue, in the same run. "
               "Longest queue = the share of the packets the fullest queue held (the "
               "kernel hashes addresses; both readers get the same split).")
    out.append("")
    out.append("| N | bare C pkt/s | luadivert pkt/s | luadivert / bare C | bare C vs N=1 | "
               "luadivert vs N=1 | longest queue |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    b1, l1 = num(r, "workers.1.bare_pps"), num(r, "workers.1.ld_pps")
    ratios = []
    for n in range(1, top + 1):
        b, l = num(r, f"workers.{n}.bare_pps"), num(r, f"workers.{n}.ld_pps")
        share = num(r, f"workers.{n}.max_share")
        ratio = l / b if b and l is not None else None
        ratios.append(ratio)
        f = lambda v: "n/a" if v is None else f"{v:,.0f}"
        g = lambda v: "n/a" if v is None else f"{v:.2f}"
        out.append(f"| {n} | {f(b)} | {f(l)} | {g(ratio)} | "
                   f"{g(b / b1 / n if b and b1 else None)}x of linear | "
                   f"{g(l / l1 / n if l and l1 else None)}x of linear | "
                   f"{'n/a' if share is None else f'{share:.0%}'} |")
    out.append("")
    ok = None if any(x is None for x in ratios) else all(x >= 0.9 for x in ratios)
    worst = min((x for x in ratios if x is not None), default=None)
    out.append(f"- {'SKIP' if ok is None else 'PASS' if ok else 'FAIL'} luadivert --workers N "
               f">= 0.9 of bare C at every N (issue 16)"
               + (f": the lowest is {worst:.2f}" if worst is not None else ""))
    if ncpu >= 8 and top >= 8:
        l8 = num(r, "workers.8.ld_pps")
        lin = l8 / l1 / 8 if l8 and l1 else None
        out.append(f"- {'SKIP' if lin is None else 'PASS' if lin >= 0.85 else 'FAIL'} "
                   f"luadivert >= 0.85 of linear from 1 to 8 workers"
                   + (f": {lin:.2f}" if lin is not None else ""))
    else:
        out.append(f"- SKIP >= 0.85 of linear from 1 to 8 workers (this machine has {ncpu} CPUs)")
    out.append("")


# bench/shape_egress.sh's example links: key, file, rate caps in Mbit/s
EXAMPLES = [("3g", "shape_3g.lua"), ("sat", "shape_satellite.lua")]
EXAMPLE_CAPS = {"3g": {"up": 0.384, "down": 2.0}, "sat": {"up": 2.0, "down": 10.0}}


def egress(out, r):
    """Section 5: shaping the host's own traffic (bench/shape_egress.sh)."""
    if "egress.in_mbps" not in r:
        return
    i, o, rt = num(r, "egress.in_mbps"), num(r, "egress.out_mbps"), num(r, "egress.rate_mbps")
    out.append("## 5. Shaping the host's own traffic: TCP through a pipe at the sender's output "
               "(iperf3, bench/shape_egress.sh)")
    out.append("")
    out.append(f"Median of {r.get('egress.runs', '?')} runs of {r.get('egress.seconds', '?')} s. "
               "At output, held packets are taken over (copied, the original dropped, the copy "
               "segmented and sent at release); at input they wait in the kernel queue.")
    out.append("")
    rows = [["delay = 50 at the receiver's input", fmt(i), "1.00"],
            ["delay = 50 at the sender's output", fmt(o), ratio(o, i)],
            ["rate = 100mbit at the sender's output (payload)", fmt(rt, 1), "-"]]
    out += table(["pipe", "Mbit/s", "ratio to input"], rows)
    out.append("")
    if "egress.3g_up_mbps" in r:
        out.append(f"The example links, run in the sender as a user would: one iperf3 run of "
                   f"{r.get('egress.ex_seconds', '?')} s each way after the first "
                   f"{r.get('egress.ex_omit', '?')} s (slow start over the long round trip and "
                   "its recovery), the steady rate. IP rate = payload x 1500 / 1448.")
        out.append("")
        rows = []
        for key, name in EXAMPLES:
            for d in ("up", "down"):
                cap = EXAMPLE_CAPS[key][d]
                m = num(r, f"egress.{key}_{d}_mbps")
                if m is None:
                    continue
                ip = m * 1500 / 1448 if m is not None else None
                rows.append([f"{name} {'upload (output)' if d == 'up' else 'download (input)'}",
                             fmt(m, 3), fmt(ip, 3), f"{cap:g}",
                             f"{ip / cap * 100:.1f}%" if ip is not None else "-"])
        out += table(["link", "payload Mbit/s", "IP Mbit/s", "cap", "of cap"], rows)
        out.append("")


def goals_and_notes(out, r, notes, ref_pps, ref_cpu):
    mem = [c for c in ORDER if c.startswith("ld_") and f"{c}.vmhwm_kb" in r]
    growth = r.get("_growth")
    # ---- goals
    goals = []
    missed = []

    def goal(text, ok, miss=""):
        if ok is None:
            goals.append(f"- SKIP {text} (not measured)")
            return
        goals.append(f"- {'PASS' if ok else 'FAIL'} {text}")
        if not ok and miss:
            missed.append(miss)

    def pps_goal(c, frac):
        v = num(r, f"{c}.drain_pps")
        if v is None or not ref_pps:
            goal(f"{NAMES[c]}: >= {frac:.0%} of bare C batched pkt/s", None)
            return
        goal(f"{NAMES[c]}: >= {frac:.0%} of bare C batched pkt/s ({v / ref_pps:.1%})",
             v >= frac * ref_pps,
             f"{NAMES[c]} reaches {v / ref_pps:.1%} of the bare-C packets/s, "
             f"{(frac - v / ref_pps) * 100:.1f} points short of {frac:.0%}.")

    def cpu_goal(c, lim):
        v = num(r, f"{c}.cpu_ns")
        if v is None or not ref_cpu:
            goal(f"{NAMES[c]}: CPU per packet <= {lim:.2f}x bare C", None)
            return
        goal(f"{NAMES[c]}: CPU per packet <= {lim:.2f}x bare C ({v / ref_cpu:.2f}x, "
             f"{v:.0f} vs {ref_cpu:.0f} ns)", v <= lim * ref_cpu,
             f"{NAMES[c]} spends {v - ref_cpu:.0f} ns more CPU per packet than bare C "
             f"({v / ref_cpu:.2f}x, limit {lim:.2f}x).")

    pps_goal("ld_pass_all", 0.95)
    cpu_goal("ld_pass_all", 1.10)
    pps_goal("ld_parse_match", 0.95)
    cpu_goal("ld_parse_match", 1.10)
    pps_goal("ld_rewrite", 0.85)
    # issue 11: a FreeBSD-style C program on libluadivert-divert (read, write back)
    pps_goal("c_divert", 0.90)
    cpu_goal("c_divert", 1 / 0.90)
    lt, nt = num(r, "ld_pass_all.tcp_mbps"), num(r, "none.tcp_mbps")
    goal("bulk TCP with GSO: luadivert >= 80% of no queue" +
         (f" ({lt / nt:.1%})" if lt and nt else ""),
         None if not (lt and nt) else lt >= 0.8 * nt,
         f"bulk TCP through luadivert reaches {lt / nt:.1%} of no queue." if lt and nt else "")
    for phase in ("idle", "load"):
        for k, slack in (("p50", 5), ("p99", 20)):
            v, b = num(r, f"ld_pass_all.lat_{phase}_{k}"), num(r, f"{REF}.lat_{phase}_{k}")
            goal(f"latency {phase} {k}: luadivert <= bare C + {slack} us"
                 + (f" ({v:.1f} vs {b:.1f})" if v is not None and b is not None else ""),
                 None if v is None or b is None else v <= b + slack,
                 f"latency {phase} {k} is {v - b - slack:.1f} us over bare C + {slack} us."
                 if v is not None and b is not None else "")
    # issue 13: what --metrics and --record cost, next to pass-all of the same run. CPU per
    # packet is the measure (wall-clock drain rates swing with the machine's other load);
    # --record's writer thread counts in it: its disk work is CPU the process spends.
    pa, pac = num(r, "ld_pass_all.drain_pps"), num(r, "ld_pass_all.cpu_ns")
    for c, lim in (("ld_metrics", 0.02), ("ld_record", None)):
        v, vc = num(r, f"{c}.drain_pps"), num(r, f"{c}.cpu_ns")
        if vc is None or not pac:
            continue
        cost = vc / pac - 1
        also = f"; drain pkt/s {v:,.0f} vs {pa:,.0f}" if v and pa else ""
        if lim is None:
            rec_drop = r.get("ld_record.record_dropped", "?")
            goals.append(f"- INFO {NAMES[c]}: costs {cost:+.1%} CPU per packet next to pass-all "
                         f"({vc:.0f} vs {pac:.0f} ns{also}); {rec_drop} packets not recorded")
        else:
            goal(f"{NAMES[c]}: costs <= {lim:.0%} CPU per packet next to pass-all "
                 f"({cost:+.1%}: {vc:.0f} vs {pac:.0f} ns{also})",
                 cost <= lim, f"{NAMES[c]} costs {cost:.1%} more CPU per packet than pass-all.")
    d = num(r, "ld_pass_all.rate80_drops")
    goal("zero kernel queue drops at 80% of the maximum rate (luadivert pass-all)"
         + (f" ({d:.0f} dropped)" if d is not None else ""),
         None if d is None else d == 0, f"{d} packets dropped at 80% load." if d else "")
    rss = [num(r, f"{c}.vmhwm_kb") for c in mem + (["ld_heap"] if "ld_heap.vmhwm_kb" in r else [])]
    rss = [x for x in rss if x is not None]
    goal("peak RSS <= 16 MiB" + (f" ({max(rss) / 1024:.1f} MiB)" if rss else ""),
         None if not rss else max(rss) <= 16 * 1024,
         f"peak RSS {max(rss) / 1024:.1f} MiB." if rss else "")
    goal("no Lua heap growth per packet" + (f" ({growth:.4f} B/packet)" if growth is not None else ""),
         None if growth is None else growth < 0.01,
         f"the Lua heap grows {growth:.3f} bytes per packet." if growth is not None else "")

    ei, eo, er = num(r, "egress.in_mbps"), num(r, "egress.out_mbps"), num(r, "egress.rate_mbps")
    goal("egress TCP through 50 ms: >= 0.9x the same pipe at ingress (issue 17)"
         + (f" ({eo / ei:.2f}x, {eo:.0f} vs {ei:.0f} Mbit/s)" if ei and eo is not None else ""),
         None if not ei or eo is None else eo >= 0.9 * ei,
         f"egress TCP through 50 ms reaches {eo / ei:.2f}x of ingress." if ei and eo is not None else "")
    # The pipe's rate counts IP bytes; iperf3 counts TCP payload: 1448 of
    # every 1500 bytes (MTU 1500, 52 bytes of IP + TCP headers with timestamps).
    eip = er * 1500 / 1448 if er is not None else None
    goal("egress TCP through a 100 Mbit/s rate pipe: within 5% of the cap (issue 17)"
         + (f" ({eip:.1f} Mbit/s of IP packets, {er:.1f} of payload)" if er is not None else ""),
         None if er is None else 95 <= eip <= 105,
         f"egress TCP through rate = 100mbit gets {eip:.1f} Mbit/s of IP packets." if er is not None else "")

    # The uploads of the example links (issue 17), in IP bytes as the pipes count.
    for key, name in EXAMPLES:
        m = num(r, f"egress.{key}_up_mbps")
        cap = EXAMPLE_CAPS[key]["up"]
        ip = m * 1500 / 1448 if m is not None else None
        goal(f"{name} upload at the sender's output: >= 90% of its {cap:g} Mbit/s cap (issue 17)"
             + (f" ({ip / cap * 100:.1f}%, {ip:.3f} Mbit/s of IP packets)" if ip is not None else ""),
             None if ip is None else ip >= 0.9 * cap,
             f"the {name} upload reaches {ip / cap * 100:.1f}% of its cap." if ip is not None else "")

    for text, ok, miss in report_issue16.goals(r, num):
        goal(text, ok, miss)

    out.append("## Goals (issues 8, 16 and 17)")
    out.append("")
    out += goals
    out.append("")
    if missed or notes:
        out.append("## Notes")
        out.append("")
        out += [f"- {m}" for m in missed]
        out += [f"- {n}" for n in notes]
        out.append("")
    profile(out, missed)


def dso_shares(path):
    """{dso: percent} from a `perf report --sort dso` text."""
    shares = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s+(\d+\.\d+)%\s+(.+?)\s*$", line)
            if m:
                name = m.group(2)
                key = ("kernel" if "kernel" in name else "libmnl" if "libmnl" in name else
                       "libnetfilter_queue" if "netfilter_queue" in name else
                       "LuaJIT" if "luajit" in name or "[JIT]" in name else
                       "libc" if "libc" in name else
                       "program" if "luadivert" in name or "bare_nfq" in name else "other")
                shares[key] = shares.get(key, 0.0) + float(m.group(1))
    return shares


def profile(out, missed):
    pdir = os.environ.get("BENCH_PROFILE_DIR", "")
    if not pdir:
        if missed:
            out.append("Run `make bench PROFILE=1` to see where the time goes (perf).")
            out.append("")
        return
    cols = ["kernel", "program", "libmnl", "libnetfilter_queue", "LuaJIT", "libc", "other"]
    rows = []
    for c in ORDER:
        path = os.path.join(pdir, f"{c}.dso.txt")
        if os.path.exists(path):
            sh = dso_shares(path)
            rows.append([NAMES[c]] + [f"{sh.get(k, 0.0):.1f}%" for k in cols])
    if rows:
        out.append("## Profile while draining (perf, share of the reader's samples)")
        out.append("")
        out += table(["config"] + cols, rows)
        out.append("")
    path = os.path.join(pdir, "ld_pass_all.txt")
    if os.path.exists(path):
        out.append("Top symbols of luadivert pass-all (`perf report -i build/bench/profile/"
                   "ld_pass_all.data` for the call graphs):")
        out.append("")
        out.append("```")
        n = 0
        with open(path) as f:
            for line in f:
                if re.match(r"^\s+\d+\.\d+%", line):
                    out.append(re.sub(r"\s+-\s+-\s*$", "", line.rstrip())[:100])
                    n += 1
                    if n == 20:
                        break
        out.append("```")
        out.append("")

if __name__ == "__main__":
    main()
