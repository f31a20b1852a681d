"""The table: one row per figure, the median over the rounds, printed and written to
results.json."""
import json
import statistics

from common import FAILURES, STEP_ERRORS

def get(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


# (name, unit, profile, path into one run's figures, higher_is_better, client). The rows
# named as issue 6 names them are measured with librdkafka (fjord-bench); the rows of
# Kafka's own Java tools say "[Java]" in their names.
ROWS = [
    ("produce 1KB acks=1 1 broker", "MB/s", "default", ("p1k", "MBps"), True, "librdkafka"),
    ("produce 1KB acks=1 1 broker", "msgs/s", "default", ("p1k", "msgs"), True, "librdkafka"),
    ("produce 100B acks=1 1 broker", "MB/s", "default", ("p100", "MBps"), True, "librdkafka"),
    ("produce 100B acks=1 1 broker", "msgs/s", "default", ("p100", "msgs"), True,
     "librdkafka"),
    ("produce 1KB acks=all 1 broker", "MB/s", "default", ("acksall", "MBps"), True,
     "librdkafka"),
    ("produce 1KB acks=all RF=3", "MB/s", "rf3", ("rf3_p1k", "MBps"), True, "librdkafka"),
    ("produce 1KB acks=all RF=3", "msgs/s", "rf3", ("rf3_p1k", "msgs"), True, "librdkafka"),
    ("produce 100B acks=all RF=3", "MB/s", "rf3", ("rf3_p100", "MBps"), True, "librdkafka"),
    ("produce 100B acks=all RF=3", "msgs/s", "rf3", ("rf3_p100", "msgs"), True, "librdkafka"),
    ("produce 1KB acks=1 RF=3", "MB/s", "rf3", ("rf3_a1", "MBps"), True, "librdkafka"),
    ("produce 1KB acks=1 1 broker fsync per batch", "MB/s", "fsync", ("p1k", "MBps"), True,
     "librdkafka"),
    ("produce 1KB acks=all 1 broker fsync per batch", "MB/s", "fsync", ("acksall", "MBps"),
     True, "librdkafka"),
    ("consume 1KB from page cache", "MB/s", "default", ("consume", "MBps"), True,
     "librdkafka"),
    ("produce p50 latency at fixed rate", "ms", "default", ("lat", "p50"), False, "librdkafka"),
    ("produce p99 latency at fixed rate", "ms", "default", ("lat", "p99"), False, "librdkafka"),
    ("produce p99.9 latency at fixed rate", "ms", "default", ("lat", "p999"), False,
     "librdkafka"),
    ("produce p50 latency at 1,000/s, linger.ms=0", "ms", "default", ("lat0", "p50"), False,
     "librdkafka"),
    ("produce p99 latency at 1,000/s, linger.ms=0", "ms", "default", ("lat0", "p99"), False,
     "librdkafka"),
    ("produce p99.9 latency at 1,000/s, linger.ms=0", "ms", "default", ("lat0", "p999"),
     False, "librdkafka"),
    ("end-to-end p50 latency at fixed rate", "ms", "default", ("e2e", "e2e_p50"), False,
     "librdkafka"),
    ("end-to-end p99 latency at fixed rate", "ms", "default", ("e2e", "e2e_p99"), False,
     "librdkafka"),
    ("end-to-end p99.9 latency at fixed rate", "ms", "default", ("e2e", "e2e_p999"), False,
     "librdkafka"),
    ("broker peak RSS", "MB", "default", ("rss_mb",), False, "-"),
    ("broker CPU seconds per GB", "s/GB", "default", ("cpu_s_per_gb",), False, "librdkafka"),
    ("broker CPU seconds per GB, 1KB text uncompressed", "s/GB", "default",
     ("text_none_cpu_s_per_gb",), False, "librdkafka"),
    ("broker CPU seconds per GB, 1KB text lz4", "s/GB", "default",
     ("text_lz4_cpu_s_per_gb",), False, "librdkafka"),
    ("broker CPU seconds per GB, 1KB text zstd", "s/GB", "default",
     ("text_zstd_cpu_s_per_gb",), False, "librdkafka"),
    ("produce 1KB text uncompressed acks=1 1 broker", "MB/s", "default", ("text_none", "MBps"),
     True, "librdkafka"),
    ("produce 1KB text lz4 acks=1 1 broker", "MB/s", "default", ("text_lz4", "MBps"), True,
     "librdkafka"),
    ("produce 1KB text zstd acks=1 1 broker", "MB/s", "default", ("text_zstd", "MBps"), True,
     "librdkafka"),
    ("cold start", "s", "default", ("cold_start_s",), False, "kcat"),
    ("recovery after kill -9", "s", "default", ("recovery_s",), False, "kcat"),
    ("client CPU seconds per GB, produce 1KB acks=1", "s/GB", "default",
     ("p1k_client_cpu_s_per_gb",), False, "librdkafka"),
    ("client CPU seconds per GB, consume 1KB", "s/GB", "default",
     ("consume_client_cpu_s_per_gb",), False, "librdkafka"),
    ("produce 1KB acks=1 1 broker [Java]", "MB/s", "default", ("j1k", "MBps"), True, "java"),
    ("produce 1KB acks=1 1 broker [Java, past the first 20 s]", "MB/s", "default",
     ("j1k", "steady_MBps"), True, "java"),
    ("produce 100B acks=1 1 broker [Java]", "MB/s", "default", ("j100", "MBps"), True, "java"),
    ("produce 1KB acks=all 1 broker [Java]", "MB/s", "default", ("jacksall", "MBps"), True,
     "java"),
    ("produce 1KB acks=all 1 broker [Java, past the first 20 s]", "MB/s", "default",
     ("jacksall", "steady_MBps"), True, "java"),
    ("produce 1KB acks=all RF=3 [Java]", "MB/s", "rf3", ("jrf3_p1k", "MBps"), True, "java"),
    ("produce 1KB acks=1 1 broker fsync per batch [Java]", "MB/s", "fsync", ("j1k", "MBps"),
     True, "java"),
    ("consume 1KB from page cache [Java]", "MB/s", "default", ("jconsume", "fetch_MBps"), True,
     "java"),
    ("produce p99 latency at fixed rate [Java]", "ms", "default", ("jlat", "p99"), False,
     "java"),
    ("broker CPU seconds per GB, consume 1KB", "s/GB", "default", ("consume_cpu_s_per_gb",),
     False, "librdkafka"),
] + [row for parts in (1, 3, 12) for row in (
    (f"produce 1KB acks=1 1 broker, {parts} partitions [rdkafka_performance]", "MB/s",
     "default", (f"rp1k_{parts}p", "MBps"), True, "rdkafka_performance"),
    (f"produce 1KB acks=all 1 broker, {parts} partitions [rdkafka_performance]", "MB/s",
     "default", (f"racksall_{parts}p", "MBps"), True, "rdkafka_performance"),
    (f"consume 1KB from page cache, {parts} partitions [rdkafka_performance]", "MB/s",
     "default", (f"rconsume_{parts}p", "MBps"), True, "rdkafka_performance"),
    (f"broker CPU seconds per GB, produce 1KB, {parts} partitions [rdkafka_performance]",
     "s/GB", "default", (f"rp1k_{parts}p", "broker_cpu_s"), False, "rdkafka_performance"),
    (f"broker CPU seconds per GB, consume 1KB, {parts} partitions [rdkafka_performance]",
     "s/GB", "default", (f"rconsume_{parts}p", "broker_cpu_s"), False, "rdkafka_performance"),
    (f"client CPU seconds per GB, produce 1KB, {parts} partitions [rdkafka_performance]",
     "s/GB", "default", (f"rp1k_{parts}p", "client_cpu_s"), False, "rdkafka_performance"),
    (f"client CPU seconds per GB, consume 1KB, {parts} partitions [rdkafka_performance]",
     "s/GB", "default", (f"rconsume_{parts}p", "client_cpu_s"), False, "rdkafka_performance"),
)]
# Rows whose figure is CPU seconds of one run, divided by the run's GB (n_parts x 1 KB).
PER_GB_OF_PARTS = {"broker_cpu_s", "client_cpu_s"}


def rnd(v):
    return round(v, 3 if abs(v) < 10 else 1) if isinstance(v, float) else v


# Rows only a full run measures: recovery fills a 5 GB log, and the Java rows past their
# first 20 s need runs longer than --quick's (its [Java] rows follow the same warm-up as
# every other row).
FULL_RUN_ONLY = {
    "recovery after kill -9",
    "produce 1KB acks=1 1 broker [Java, past the first 20 s]",
    "produce 1KB acks=all 1 broker [Java, past the first 20 s]",
}


def build_rows(res, specs, gb_of_parts=None):
    """One row per figure of `specs` (entries as in ROWS): the median over the rounds
    that produced it, with every round's value in kafka_runs / fjord_runs (null where a
    round failed). A system's row with no figure carries the error of the step that left
    it empty (kafka_error / fjord_error). Rows of a setup that did not run (--only) are
    left out. `gb_of_parts`: the GB of one partition-row run, to turn CPU seconds into
    CPU seconds per GB."""
    rows = []
    for name, unit, profile, path, hib, client in specs:
        if not any(profile in res[s] for s in ("kafka", "fjord")):
            continue
        row = {"name": name, "unit": unit, "client": client, "higher_is_better": hib,
               "setup": profile}
        for s in ("kafka", "fjord"):
            runs = [get(r, *path) for r in res[s].get(profile, [])]
            if path[-1] in PER_GB_OF_PARTS and path[0].startswith("r") and gb_of_parts:
                runs = [v / gb_of_parts if v is not None else None for v in runs]
            vals = [v for v in runs if v is not None]
            row[s] = rnd(statistics.median(vals)) if vals else None
            row[f"{s}_runs"] = [rnd(v) for v in runs]
            if row[s] is None:
                errs = (STEP_ERRORS.get((s, profile, path[0]))
                        or STEP_ERRORS.get((s, profile, "*")))
                if errs:
                    row[f"{s}_error"] = errs[0]
        if name in FULL_RUN_ONLY and row["kafka"] is None and row["fjord"] is None:
            row["note"] = "n/a (full run only)"
        rows.append(row)
    return rows


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def spread(runs):
    vals = [v for v in runs if v is not None]
    if len(vals) < 2:
        return ""
    return f"{fmt(min(vals))}-{fmt(max(vals))}"


def cell(row, system):
    """A system's figure, or FAILED when a step's error left it empty (the error is listed
    under the table)."""
    if row.get(system) is None and row.get(f"{system}_error"):
        return "FAILED"
    return fmt(row.get(system))


def ratio(row):
    if row.get("kafka") and row.get("fjord") is not None:
        return f"{row['fjord'] / row['kafka']:.2f}x"
    return "-"


def markdown(rows, hdr, fields):
    lines = [[f(r) for f in fields] for r in rows]
    w = [max(len(str(x[i])) for x in lines + [hdr]) for i in range(len(hdr))]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for x in lines:
        out.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |")
    return "\n".join(out)


def print_scaling(rows):
    """The scaling curve: one row per figure and partition count."""
    print("\nPartition scaling, 3 brokers, replication factor 3:")
    print(markdown(rows, ["row", "unit", "client", "Kafka", "Fjord", "Fjord/Kafka"], [
        lambda r: r["name"], lambda r: r["unit"], lambda r: r["client"],
        lambda r: cell(r, "kafka"), lambda r: cell(r, "fjord"), ratio]))
    errors = [(r["name"], s, r[f"{s}_error"]) for r in rows for s in ("kafka", "fjord")
              if r.get(f"{s}_error")]
    for name, s, e in errors:
        print(f"  FAILED {s}, {name}: {e}")


def full_table(rows):
    """Every row with its client, median, ratio and the rounds' min-max; a row only a full
    run measures says so."""
    def unless_note(f):
        return lambda r: "" if r.get("note") else f(r)

    return markdown(rows, ["row", "unit", "client", "Kafka", "Fjord", "Fjord/Kafka",
                           "Kafka min-max", "Fjord min-max"], [
        lambda r: r["name"], lambda r: r["unit"], lambda r: r["client"],
        lambda r: r.get("note") or cell(r, "kafka"), unless_note(lambda r: cell(r, "fjord")),
        unless_note(ratio), unless_note(lambda r: spread(r["kafka_runs"])),
        unless_note(lambda r: spread(r["fjord_runs"]))]) if rows else ""


def print_table(rows, machine, params):
    print(full_table(rows))
    print()
    print("Machine limits (same run):")
    for k, v in machine.items():
        print(f"  {k}: {v}")

    def fj(name, unit="MB/s"):
        return next((r["fjord"] for r in rows if r["name"] == name and r["unit"] == unit), None)

    lb = machine.get("loopback_tcp_MBps")
    cons = fj("consume 1KB from page cache")
    prod = fj("produce 1KB acks=1 1 broker")
    if lb and cons:
        print(f"  Fjord consume 1KB = {cons / lb:.1%} of loopback TCP bandwidth")
    if lb and prod:
        print(f"  Fjord produce 1KB acks=1 = {prod / lb:.1%} of loopback TCP bandwidth")
    d = machine.get("disk_seq_write_MBps")
    if d and prod:
        # Without fsync a produce ends in the page cache, so this may exceed 100%.
        print(f"  Fjord produce 1KB acks=1 = {prod / d:.1%} of sequential disk write "
              "(synced once at the end; the produce is not synced)")
    fs = fj("produce 1KB acks=1 1 broker fsync per batch")
    dsync = machine.get("disk_seq_write_fdatasync_per_1MiB_MBps")
    if dsync and fs:
        # librdkafka's batches are up to 1 MB (batch.size), so the comparable disk figure
        # is 1 MiB writes each followed by a sync.
        print(f"  Fjord produce 1KB fsync per batch = {fs / dsync:.1%} of 1 MiB dsync writes")
    for r in rows:
        for s in ("kafka", "fjord"):
            if r.get(f"{s}_error"):
                print(f"  FAILED {s}, {r['name']} ({r['unit']}): {r[f'{s}_error']}")
    if FAILURES:
        print(f"\n{len(FAILURES)} workload(s) FAILED (their figures are missing):")
        for f in FAILURES:
            print(f"  - {f}")
    print(f"Parameters: {json.dumps(params)}")




# README's benchmark section holds the generated tables between these markers; a run that
# measured a table's rows rewrites it (BENCH_README=0 leaves README alone).
README_SECTIONS = ("main", "partitions", "tls", "scaling", "txn")
# The setups whose rows have a README section of their own.
OWN_SECTION_SETUPS = {"security", "txn"}


def main_rows(rows):
    """The headline rows: one, three and fsync'd brokers with fjord-bench and Kafka's Java
    tools (not the partition-count, TLS or transaction rows, which have sections of their
    own)."""
    return [r for r in rows
            if r.get("setup") not in OWN_SECTION_SETUPS and r["client"] != "rdkafka_performance"]


def partition_rows(rows):
    """The rdkafka_performance rows of the partition counts (one broker)."""
    return [r for r in rows
            if r["client"] == "rdkafka_performance" and r.get("setup") not in OWN_SECTION_SETUPS]


def run_note(machine):
    load = [machine.get("loadavg_at_start"), machine.get("loadavg_at_end")]
    text = f"Generated by `e2e/bench.sh` on {machine.get('date', '?')}, {machine.get('cores')} cores"
    if all(load):
        text += (f", 1-minute load average {load[0][0]:.1f} at the start and "
                 f"{load[1][0]:.1f} at the end (brokers and clients share the cores)")
    text += "."
    if machine.get("partial"):
        text += (" The run was cut short: `-` is a figure it did not reach (not a failure; "
                 "failures read FAILED).")
    return text


def partition_table(rows):
    rs = partition_rows(rows)
    return markdown(rs, ["row", "unit", "Kafka", "Fjord", "Fjord/Kafka", "Kafka min-max",
                         "Fjord min-max"], [
        lambda r: r["name"].replace(" [rdkafka_performance]", ""), lambda r: r["unit"],
        lambda r: cell(r, "kafka"), lambda r: cell(r, "fjord"), ratio,
        lambda r: spread(r["kafka_runs"]), lambda r: spread(r["fjord_runs"])]) if rs else ""


def scaling_table(rows):
    if not rows:
        return ""
    points = sorted({r["partitions"] for r in rows})
    figures = []
    for r in rows:
        if (r["figure"], r["unit"]) not in figures:
            figures.append((r["figure"], r["unit"]))
    hdr = ["figure", "unit"] + [f"{n:,}: Kafka / Fjord" for n in points]

    def at(figure, n):
        r = next(r for r in rows if r["figure"] == figure and r["partitions"] == n)
        return f"{cell(r, 'kafka')} / {cell(r, 'fjord')}"

    lines = [[f, u] + [at(f, n) for n in points] for f, u in figures]
    w = [max(len(str(x[i])) for x in lines + [hdr]) for i in range(len(hdr))]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += ["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |"
            for x in lines]
    return "\n".join(out)


def failures_note(rows):
    errs = [f"- {s} FAILED, {r['name']}: {r[f'{s}_error'][:300]}"
            for r in rows for s in ("kafka", "fjord") if r.get(f"{s}_error")]
    return ("\n\n" + "\n".join(errs)) if errs else ""


def write_readme(path, rows, scale, machine):
    """Rewrites the generated sections of README whose rows this run measured; returns
    their names."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    tls = [r for r in rows if r.get("setup") == "security"]
    txn = [r for r in rows if r.get("setup") == "txn"]
    bodies = {"main": full_table(main_rows(rows)) + failures_note(main_rows(rows)),
              "partitions": partition_table(rows) + failures_note(partition_rows(rows)),
              "tls": full_table(tls) + failures_note(tls),
              "txn": full_table(txn) + failures_note(txn),
              "scaling": scaling_table(scale) + failures_note(scale)}
    done = []
    for name in README_SECTIONS:
        start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        if not bodies[name] or start not in text or end not in text:
            continue
        a, b = text.index(start) + len(start), text.index(end)
        text = text[:a] + f"\n{run_note(machine)}\n\n{bodies[name]}\n" + text[b:]
        done.append(name)
    if done:
        with open(path, "w") as f:
            f.write(text)
    return done
