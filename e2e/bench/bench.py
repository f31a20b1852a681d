#!/usr/bin/env python3
"""Fjord vs Apache Kafka, same clients, same machine, one system at a time: a single broker
in two durability profiles, then a cluster of three brokers on loopback with replication
factor 3 (plain, and transactional in txn.py). Each setup runs several rounds, alternating Kafka and Fjord (K, F, K, F, ...),
each on a fresh data directory; the table shows the median and the spread of the rounds.

The clients: fjord-bench (librdkafka through the rdkafka crate) for the main rows, Kafka's
own ProducerPerformance / ConsumerPerformance for the rows marked [Java], kcat for cold
start and recovery.

Driven by e2e/bench.sh. Every figure is best effort: a workload that fails or times out
is logged, listed under the table and in results.json ("failures") and records null, and
the run goes on; the run fails only if a system could not be measured at all.

Layout: bench.py runs the workloads and main; brokers.py starts and stops the systems;
clients.py wraps fjord-bench and Kafka's Java tools; txn.py runs the transaction setup
with txn_client.py; table.py builds and prints the rows;
common.py holds the log, the failure list and the /proc figures.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from brokers import (CLUSTER_BROKERS, FJORD_HTTP, FJORD_INTERNAL, FJORD_PORT,
                     KAFKA_CLUSTER_PORT, KAFKA_PORT, Fjord, FjordCluster, Kafka, KafkaCluster,
                     fjord_cluster_nodes)
from clients import Java, RdBench, RdPerf
from common import (FAILURES, STEP_ERRORS, Steps, fail, log, measured, port_open, proc_hwm_mb,
                    setup_failed)
import charts
import security
import txn
from scaling import POINTS, run_scaling, scaling_rows
from table import ROWS, build_rows, print_scaling, print_table, write_readme


# ---------------------------------------------------------------- machine limits

def loopback_bandwidth(seconds=3.0):
    """MB/s of one TCP stream over 127.0.0.1 (Python sender and receiver, large buffers).
    A floor for the kernel's loopback: Python's per-call overhead is small at 1 MiB writes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    received = [0]

    def recv():
        conn, _ = srv.accept()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                break
            received[0] += n
        conn.close()

    t = threading.Thread(target=recv)
    t.start()
    s = socket.create_connection(("127.0.0.1", port))
    chunk = b"\0" * (1 << 20)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        s.sendall(chunk)
    s.close()
    t.join()
    elapsed = time.monotonic() - start
    srv.close()
    return received[0] / elapsed / 1e6


def dd_rate(path, args):
    """MB/s reported by dd for a sequential write of `args` to path."""
    try:
        out = subprocess.run(["dd", "if=/dev/zero", f"of={path}", *args],
                             capture_output=True, text=True, timeout=300).stderr
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    m = re.search(r"copied, ([\d.]+) s, ([\d.]+) (\w)B/s", out)
    if not m:
        return None
    secs = float(m.group(1))
    copied = int(re.search(r"^(\d+) bytes", out, re.M).group(1))
    return copied / secs / 1e6


def machine_limits(work, quick):
    log("measuring machine limits (loopback, disk)")
    m = {"cores": os.cpu_count(), "kernel": os.uname().release,
         "kernel_tls": security.kernel_tls()}
    try:
        with open("/proc/meminfo") as f:
            m["mem_total_gb"] = round(int(f.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    try:
        m["loopback_tcp_MBps"] = round(loopback_bandwidth(3.0 if quick else 5.0), 1)
    except Exception as e:  # a figure, never a failure
        log(f"loopback measurement failed: {e}")
        m["loopback_tcp_MBps"] = None
    f = os.path.join(work, "dd.bin")
    m["disk_seq_write_MBps"] = dd_rate(f, ["bs=1M", "count=1024" if not quick else "count=512",
                                           "conv=fdatasync"])
    m["disk_seq_write_fdatasync_per_1MiB_MBps"] = dd_rate(f, ["bs=1M", "count=64", "oflag=dsync"])
    m["disk_seq_write_fdatasync_per_16KiB_MBps"] = dd_rate(f, ["bs=16k", "count=1024",
                                                               "oflag=dsync"])
    for k in list(m):
        if isinstance(m[k], float):
            m[k] = round(m[k], 1)
    return m



# The codecs of the validation-cost rows (librdkafka's compression.type values).
CODECS = ("none", "lz4", "zstd")


# kcat as e2e/bench.sh found or installed it.
KCAT = os.environ.get("KCAT", "kcat")


def kcat_ok(port, topic):
    try:
        r = subprocess.run([KCAT, "-P", "-b", f"127.0.0.1:{port}", "-t", topic,
                            "-X", "message.timeout.ms=2000",
                            "-X", "socket.connection.setup.timeout.ms=1000"],
                           input=b"cold-start\n", capture_output=True, timeout=10)
        return r.returncode == 0 and b"ERROR" not in r.stderr
    except subprocess.TimeoutExpired:
        return False


def timed_start(broker, topic, deadline_s):
    """Seconds from process launch to the first acknowledged produce to `topic`, with the
    broker left running; None if no produce succeeded within the deadline."""
    t0 = time.monotonic()
    proc = broker.launch()
    first = None
    try:
        while time.monotonic() - t0 < deadline_s:
            if kcat_ok(broker.port, topic):
                first = time.monotonic() - t0
                break
            if isinstance(broker, Fjord) and proc.poll() is not None:
                break
            time.sleep(0.02)  # retry interval of the produce loop
    finally:
        # Ready whatever happened to the produce loop (kcat missing, say), so that a failed
        # timing fails its own row and the setup's other steps still run.
        broker.wait_ready(proc)
    return first


# perf as e2e/bench.sh found or installed it.
PERF = os.environ.get("PERF") or "perf"


class Profiler:
    """`perf record -g` on one broker process for the length of one workload; the report
    (flat profile by symbol, self time) lands in target/bench/perf-<name>.txt."""

    def __init__(self, out_dir, enabled):
        self.out_dir = out_dir
        self.enabled = enabled and shutil.which(PERF) is not None
        self.proc = None

    def start(self, pid, name):
        if not self.enabled or not pid:
            return
        self.name = name
        self.data = os.path.join(self.out_dir, f"perf-{name}.data")
        self.err = open(os.path.join(self.out_dir, f"perf-{name}.log"), "w")
        self.proc = subprocess.Popen([PERF, "record", "-g", "-F", "999", "-p", str(pid),
                                      "-o", self.data], stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        # perf gives no sign when it has attached; half a second is ample here, and a
        # late start only shortens the profile.
        time.sleep(0.5)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.err.close()
        txt = os.path.join(self.out_dir, f"perf-{self.name}.txt")
        with open(txt, "w") as f:
            subprocess.run([PERF, "report", "-i", self.data, "--stdio", "--no-children",
                            "--percent-limit", "0.5", "-g", "none", "--sort", "dso,symbol"],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=300)
        log(f"profile written to {txt}")
        try:
            os.unlink(self.data)
        except OSError:
            pass



# ---------------------------------------------------------------- one system, one profile

def run_system(broker, rd, java, rdperf, sizes, profile, rnd, profiler):
    """Figures for one system in one durability profile, in round `rnd` (Kafka's Java
    tools run only in the first `java_rounds` rounds). Each figure is one step (Steps): a
    step that fails leaves its own rows empty with its error, and the rest still run."""
    r = {}
    step = Steps(broker.name, profile, r)
    log(f"{broker.name} [{profile}] round {rnd + 1}: fresh start")
    if not broker.wait_ready(broker.launch()):
        setup_failed(broker.name, profile, f"{broker.name} [{profile}] did not start")
        return None
    bootstrap = broker.bootstrap
    cfg = broker.topic_configs()
    with_java = rnd < sizes["java_rounds"]
    topics = ["cold", "warm", "p1k", "p100", "lat", "e2e", "lat0", "acksall"]
    if profile == "default":
        topics += [f"text-{c}" for c in CODECS]
    if with_java:
        topics += ["j1k", "j100", "jlat", "jacksall"]
    for t in topics:
        if not rd.create_topic(bootstrap, t, cfg):
            fail(f"{broker.name}: could not create topic {t}")
    if profile == "default":
        # Cold start: stop, then time a fresh process to its first acknowledged produce.
        broker.stop()
        log(f"{broker.name}: cold start")
        step("cold_start_s", lambda: timed_start(broker, "cold", 180))
        # A cold start that failed before its launch leaves the broker down: start it
        # again, so that only the cold start row is lost.
        if not port_open(broker.port) and not broker.wait_ready(broker.launch()):
            setup_failed(broker.name, profile, f"{broker.name}: not ready after the cold start")
            return r or None
    pid = broker.pid()
    # Warm-up, the same for both systems: a JVM runs its first requests interpreted, and a
    # run that starts cold measures its JIT compiler as much as the broker.
    log(f"{broker.name} [{profile}]: warm-up, {sizes['n_warm']} x 1KB produced and read")
    if rd.produce(bootstrap, "warm", sizes["n_warm"], 1024, 1):
        rd.consume(bootstrap, "warm", sizes["n_warm"])
    sfx = "" if profile == "default" else "_fsync"
    n1k, n1k_all = sizes["n1k" + sfx], sizes["n1k_all" + sfx]
    n_j1k, n_j1k_all = sizes["n_j1k" + sfx], sizes["n_j1k_all" + sfx]
    gb = n1k * 1024 / 1e9

    log(f"{broker.name} [{profile}]: produce {n1k} x 1KB acks=1 (librdkafka)")
    prof = profile == "default" and rnd == 0 and isinstance(broker, Fjord)
    if prof:
        profiler.start(pid, "fjord-produce-1k")
    p = step("p1k", lambda: measured(pid, lambda: rd.produce(bootstrap, "p1k", n1k, 1024, 1)))
    if prof:
        profiler.stop()
    if p and "broker_cpu_s" in p:
        r["cpu_s_per_gb"] = p["broker_cpu_s"] / gb
    if p:
        r["p1k_client_cpu_s_per_gb"] = p["client_cpu_s"] / gb

    log(f"{broker.name} [{profile}]: produce {n1k_all} x 1KB acks=all (librdkafka)")
    step("acksall", lambda: measured(
        pid, lambda: rd.produce(bootstrap, "acksall", n1k_all, 1024, "all")))
    if with_java:
        log(f"{broker.name} [{profile}]: produce 1KB acks=1 and acks=all (Java)")
        step("j1k", lambda: java.produce(bootstrap, "j1k", n_j1k, 1024, 1))
        step("jacksall", lambda: java.produce(bootstrap, "jacksall", n_j1k_all, 1024, "all"))

    if profile == "default":
        log(f"{broker.name}: produce {sizes['n100']} x 100B acks=1 (librdkafka)")
        step("p100", lambda: measured(
            pid, lambda: rd.produce(bootstrap, "p100", sizes["n100"], 100, 1)))
        log(f"{broker.name}: consume {n1k} x 1KB (librdkafka)")
        if prof:
            profiler.start(pid, "fjord-consume-1k")
        c = step("consume", lambda: measured(pid, lambda: rd.consume(bootstrap, "p1k", n1k))
                 if p else None)
        if prof:
            profiler.stop()
        if c:
            r["consume_client_cpu_s_per_gb"] = c["client_cpu_s"] / gb
            if "broker_cpu_s" in c:
                r["consume_cpu_s_per_gb"] = c["broker_cpu_s"] / gb
        partition_rows(broker, rd, rdperf, sizes, step, pid, profiler if prof else None)
        # Validation cost: the same JSON-like 1 KB records uncompressed, lz4 and zstd
        # (librdkafka's default level); both brokers decompress every batch to check its
        # records, so broker CPU per GB of record values is what the check costs.
        n_text = sizes["n_text"]
        for codec in CODECS:
            log(f"{broker.name}: produce {n_text} x 1KB text, {codec} (librdkafka)")
            t = step(f"text_{codec}", lambda: measured(pid, lambda: rd.produce(
                bootstrap, f"text-{codec}", n_text, 1024, 1,
                extra=["--payload", "text", "-X", f"compression.type={codec}"])))
            if t and "broker_cpu_s" in t:
                r[f"text_{codec}_cpu_s_per_gb"] = t["broker_cpu_s"] / (n_text * 1024 / 1e9)
        rate, n_lat = sizes["lat_rate"], sizes["n_lat"]
        log(f"{broker.name}: produce-to-ack latency at {rate} msg/s x 1KB (librdkafka)")
        step("lat", lambda: rd.at_rate(bootstrap, "lat", n_lat, 1024, 1, rate, False))
        log(f"{broker.name}: end-to-end latency at {rate} msg/s x 1KB (librdkafka)")
        step("e2e", lambda: rd.at_rate(bootstrap, "e2e", n_lat, 1024, 1, rate, True))
        # With linger.ms=0 each record leaves the client at once, one produce request
        # each: what remains of the latency is the round trip and the broker. The rate
        # is lower than above because here it is a rate of requests, and Kafka on this
        # machine queues at 5,000 requests/s (p50 above 100 ms).
        rate0 = sizes["lat0_rate"]
        log(f"{broker.name}: produce-to-ack latency at {rate0} msg/s x 1KB, linger.ms=0")
        step("lat0", lambda: rd.at_rate(bootstrap, "lat0", sizes["n_lat0"], 1024, 1, rate0,
                                        False, linger_ms=0))
        if with_java:
            log(f"{broker.name}: 100B, consume and latency (Java)")
            step("j100", lambda: java.produce(bootstrap, "j100", sizes["n_j100"], 100, 1))
            step("jconsume", lambda: java.consume(bootstrap, "j1k", n_j1k) if r["j1k"] else None)
            step("jlat", lambda: java.produce(bootstrap, "jlat", sizes["n_jlat"], 1024, 1,
                                              throughput=rate))
        r["rss_mb"] = proc_hwm_mb(pid)
        if sizes.get("recovery_bytes") and rnd == 0:
            step("recovery_s", lambda: recovery(broker, rd, sizes))
    broker.stop()
    return r


# The partition counts of the partition rows; one partition is the headline rows'.
PARTITIONS = (1, 3, 12)


def partition_rows(broker, rd, rdperf, sizes, step, pid, profiler=None):
    """1 KB produce (acks=1 and acks=all) and consume on topics of 1, 3 and 12 partitions,
    with librdkafka's own rdkafka_performance (its partitioner spreads the records, its
    group consumer reads every partition). Keys: rp1k_3p, racksall_12p, rconsume_1p.
    `profiler`: records the broker under the 12-partition produce and consume."""

    def profiled(name, fn):
        if profiler is None or not name:
            return fn()
        profiler.start(pid, name)
        try:
            return fn()
        finally:
            profiler.stop()

    b = broker.bootstrap
    n = sizes["n_parts"]
    for parts in PARTITIONS:
        sfx = f"_{parts}p"
        for t in (f"rp1k{sfx}", f"racksall{sfx}"):
            if not rd.create_topic(b, t, broker.topic_configs(),
                                   extra=["--partitions", str(parts)]):
                fail(f"{broker.name}: could not create topic {t}")
        log(f"{broker.name}: {n} x 1KB over {parts} partitions, acks=1, acks=all, consume "
            "(rdkafka_performance)")
        prof = profiler if parts == PARTITIONS[-1] else None
        rp = step("rp1k" + sfx, lambda: profiled(
            f"fjord-rdperf-produce-1k-{parts}p" if prof else "", lambda: measured(
                pid, lambda: rdperf.produce(b, f"rp1k{sfx}", n, 1024, 1))))
        step("racksall" + sfx, lambda: measured(
            pid, lambda: rdperf.produce(b, f"racksall{sfx}", n, 1024, "all")))
        step("rconsume" + sfx, lambda: profiled(
            f"fjord-rdperf-consume-1k-{parts}p" if prof else "", lambda: measured(
                pid, lambda: rdperf.consume(b, f"rp1k{sfx}", n))) if rp else None)


def run_cluster(cluster, rd, java, sizes, rnd):
    """Figures for one system as a three-broker cluster, replication factor 3; durability
    as in the single-broker default rows (no fsync per write)."""
    log(f"{cluster.name} [3 brokers] round {rnd + 1}: fresh start")
    t0 = time.monotonic()
    if not cluster.start():
        setup_failed(cluster.name, "rf3", f"{cluster.name} [3 brokers] did not start")
        return None
    r = {"start_s": time.monotonic() - t0}
    step = Steps(cluster.name, "rf3", r)
    with_java = rnd < sizes["java_rounds"]
    topics = ["warm", "rf3p1k", "rf3p100", "rf3a1"] + (["jrf3p1k"] if with_java else [])
    for t in topics:
        if not rd.create_topic(cluster.bootstrap, t, [], replication_factor=3):
            fail(f"{cluster.name}: could not create topic {t}")
    b = cluster.bootstrap
    log(f"{cluster.name} [3 brokers]: warm-up, {sizes['n_warm'] // 2} x 1KB acks=all")
    rd.produce(b, "warm", sizes["n_warm"] // 2, 1024, "all")
    n1k, n100 = sizes["n_rf3_1k"], sizes["n_rf3_100"]
    log(f"{cluster.name} [3 brokers]: produce {n1k} x 1KB acks=all RF=3")
    step("rf3_p1k", lambda: rd.produce(b, "rf3p1k", n1k, 1024, "all"))
    log(f"{cluster.name} [3 brokers]: produce {n100} x 100B acks=all RF=3")
    step("rf3_p100", lambda: rd.produce(b, "rf3p100", n100, 100, "all"))
    log(f"{cluster.name} [3 brokers]: produce {n1k} x 1KB acks=1 RF=3")
    step("rf3_a1", lambda: rd.produce(b, "rf3a1", n1k, 1024, 1))
    if with_java:
        log(f"{cluster.name} [3 brokers]: produce 1KB acks=all RF=3 (Java)")
        step("jrf3_p1k", lambda: java.produce(b, "jrf3p1k", sizes["n_jrf3_1k"], 1024, "all"))
    cluster.stop()
    return r


def recovery(broker, rd, sizes):
    """Fill a topic with a large log, kill -9, time restart to first produce."""
    bootstrap = broker.bootstrap
    if not rd.create_topic(bootstrap, "big", broker.topic_configs()):
        return None
    n = sizes["recovery_bytes"] // 1024
    log(f"{broker.name}: filling {sizes['recovery_bytes'] / 1e9:.1f} GB for the recovery run")
    if not rd.produce(bootstrap, "big", n, 1024, 1, timeout=3600):
        return None
    broker.kill9()
    log(f"{broker.name}: restart after kill -9")
    return timed_start(broker, "big", 900)


# ---------------------------------------------------------------- main

# The setups --only chooses from: one broker without and with fsync per batch, three
# brokers with RF=3, one broker over SSL and SASL_SSL (security.py), the partition
# scaling curve on three brokers (scaling.py), and transactions on three brokers (txn.py).
SETUPS = ("default", "fsync", "rf3", "security", "scaling", "txn")


def setups(value):
    chosen = {v.strip() for v in value.split(",") if v.strip()}
    unknown = chosen - set(SETUPS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown setup(s) {sorted(unknown)}; choose from {','.join(SETUPS)}")
    return chosen


def partial(out_dir, machine, sizes, res, only):
    rows = build_rows(res, ROWS + security.rows() + txn.rows(),
                      gb_of_parts=sizes["n_parts"] * 1024 / 1e9)
    scale = scaling_rows(res, sizes["scale_points"]) if "scaling" in only else []
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": {**machine, "loadavg_at_end": os.getloadavg(), "partial": True},
                   "params": sizes, "rows": rows, "scaling_rows": scale,
                   "failures": FAILURES, "raw": res}, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--fjord-bin", required=True)
    ap.add_argument("--client-bin", required=True, help="fjord-bench")
    ap.add_argument("--classpath-file", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    ap.add_argument("--profile", action="store_true",
                    help="perf record Fjord under 1 KB produce and consume (first round)")
    ap.add_argument("--only", type=setups, default=",".join(SETUPS),
                    help=f"comma-separated setups to run, of {','.join(SETUPS)} (default all)")
    a = ap.parse_args()

    out_dir = os.path.join(a.root, "target", "bench")
    work = os.environ.get("BENCH_DIR", os.path.join(out_dir, "run"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    cluster_ports = ([KAFKA_CLUSTER_PORT + i for i in range(2 * CLUSTER_BROKERS)]
                     + [n[k] for n in fjord_cluster_nodes() for k in ("kafka", "http", "internal")])
    for p in (KAFKA_PORT, KAFKA_PORT + 1, FJORD_PORT, FJORD_HTTP, FJORD_INTERNAL,
              *cluster_ports, *security.PORTS):
        if port_open(p):
            sys.exit(f"bench: 127.0.0.1:{p} is in use")

    if a.quick:
        # About 14 minutes here on a loaded machine: three rounds, Kafka's Java tools in
        # the first only, record counts such that the slower system's run lasts several
        # seconds. The librdkafka latency runs are 8 s and 6 s (the first second left
        # out), the Java one 15 s so that its JIT warm-up is a small part of it.
        sizes = {"rounds": 3, "java_rounds": 1,
                 "n1k": 600_000, "n1k_all": 300_000, "n100": 2_000_000,
                 "n1k_fsync": 75_000, "n1k_all_fsync": 50_000,
                 "n_rf3_1k": 200_000, "n_rf3_100": 500_000,
                 "lat_rate": 5_000, "n_lat": 40_000, "lat0_rate": 1_000, "n_lat0": 6_000,
                 "n_j1k": 2_000_000, "n_j1k_all": 1_000_000, "n_j100": 2_000_000,
                 "n_j1k_fsync": 100_000, "n_j1k_all_fsync": 50_000, "n_jrf3_1k": 60_000,
                 "n_jlat": 75_000, "n_warm": 200_000, "n_text": 300_000,
                 "n_tls1k": 300_000, "n_jtls1k": 100_000, "n_parts": 1_000_000,
                 "scale_points": list(POINTS), "scale_settle_s": 10, "scale_idle_s": 10,
                 "n_scale": 100_000, "scale_lat_rate": 1_000, "n_scale_lat": 6_000,
                 "n_txn": 60_000, "n_jtxn": 40_000, "n_txn_warm": 3_000,
                 "txn_records": 100, "jtxn_duration_ms": 1, "txn_consume_reads": 5}
    else:
        sizes = {"rounds": 5, "java_rounds": 5,
                 "n1k": 3_000_000, "n1k_all": 1_000_000, "n100": 10_000_000,
                 "n1k_fsync": 500_000, "n1k_all_fsync": 250_000,
                 "n_rf3_1k": 500_000, "n_rf3_100": 2_000_000,
                 "lat_rate": 5_000, "n_lat": 300_000, "lat0_rate": 1_000,
                 "n_lat0": 60_000,
                 "n_j1k": 1_000_000, "n_j1k_all": 500_000, "n_j100": 3_000_000,
                 "n_j1k_fsync": 100_000, "n_j1k_all_fsync": 50_000, "n_jrf3_1k": 200_000,
                 "n_jlat": 300_000, "n_warm": 500_000, "n_text": 1_000_000,
                 "n_tls1k": 1_000_000, "n_jtls1k": 500_000, "n_parts": 3_000_000,
                 "scale_points": list(POINTS), "scale_settle_s": 30, "scale_idle_s": 30,
                 "n_scale": 500_000, "scale_lat_rate": 1_000, "n_scale_lat": 30_000,
                 "n_txn": 200_000, "n_jtxn": 150_000, "n_txn_warm": 10_000,
                 "txn_records": 100, "jtxn_duration_ms": 1, "txn_consume_reads": 5,
                 "recovery_bytes": int(os.environ.get("BENCH_RECOVERY_BYTES", 5 * 10**9))}
    sizes["rounds"] = int(os.environ.get("BENCH_ROUNDS", sizes["rounds"]))
    # BENCH_SCALE_POINTS chooses the scaling curve's partition counts (e.g. 100,1000).
    if os.environ.get("BENCH_SCALE_POINTS"):
        sizes["scale_points"] = [int(x) for x in os.environ["BENCH_SCALE_POINTS"].split(",")]
    # BENCH_SCALE multiplies every record count (a smoke run of the script: 0.05).
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    for k in sizes:
        if k.startswith("n"):
            sizes[k] = max(1, int(sizes[k] * scale))
    started = time.monotonic()
    machine = machine_limits(work, a.quick)
    machine["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine["loadavg_at_start"] = os.getloadavg()
    rd = RdBench(a.client_bin)
    rdperf = RdPerf(os.environ.get("RDKAFKA_PERF"))
    java = Java(a.classpath_file, a.root)
    txn_client = txn.TxnClient()
    profiler = Profiler(out_dir, a.profile)
    if a.profile and not profiler.enabled:
        log("perf not found: running without profiles")

    res = {"kafka": {}, "fjord": {}}
    current = [None]

    def cleanup(*_):
        if current[0] is not None:
            current[0].stop()
        sys.exit(130)

    signal.signal(signal.SIGINT, cleanup)
    signal.signal(signal.SIGTERM, cleanup)

    def one(make, run, key):
        b = make()
        current[0] = b
        try:
            out = run(b)
        except Exception as e:  # a figure, never a failure
            setup_failed(b.name, key, f"{b.name} [{key}]: {e!r}")
            out = None
        finally:
            b.stop()
            current[0] = None
        if not a.keep:
            shutil.rmtree(b.dir, ignore_errors=True)
        res[b.name].setdefault(key, []).append(out)
        # The rows so far, after every run: a run cut short still leaves its figures
        # (e2e/bench/report.py draws the charts and README's sections from them).
        partial(out_dir, machine, sizes, res, a.only)

    # Alternating: Kafka, Fjord, Kafka, Fjord, ... for each profile, each run on a fresh
    # data directory, so slow drift in the machine's load hits both systems alike.
    # The scaling curve right after the default setup: the two new parts of the table
    # come first in a run that gets cut short.
    for profile in [p for p in ("default", "scaling", "fsync") if p in a.only]:
        if profile == "scaling":
            run_scaling(a.root, a.fjord_bin, work, rd, sizes, one)
            continue
        for i in range(sizes["rounds"]):
            one(lambda: Kafka(a.root, work, profile),
                lambda b: run_system(b, rd, java, rdperf, sizes, profile, i, profiler), profile)
            one(lambda: Fjord(a.fjord_bin, work, profile),
                lambda b: run_system(b, rd, java, rdperf, sizes, profile, i, profiler), profile)
    for i in range(sizes["rounds"] if "rf3" in a.only else 0):
        one(lambda: KafkaCluster(a.root, work), lambda c: run_cluster(c, rd, java, sizes, i),
            "rf3")
        one(lambda: FjordCluster(a.fjord_bin, work), lambda c: run_cluster(c, rd, java, sizes, i),
            "rf3")
    for i in range(sizes["rounds"] if "txn" in a.only else 0):
        one(lambda: KafkaCluster(a.root, work, "kafka-txn"),
            lambda c: txn.run_txn(c, rd, java, rdperf, txn_client, sizes, i, work), "txn")
        one(lambda: FjordCluster(a.fjord_bin, work, "fjord-txn"),
            lambda c: txn.run_txn(c, rd, java, rdperf, txn_client, sizes, i, work), "txn")
    if "security" in a.only:
        certs = security.Certs(a.root, work)
        for i in range(sizes["rounds"]):
            one(lambda: security.SecureKafka(a.root, work, certs),
                lambda b: security.run_security(b, rd, java, sizes, i), "security")
            one(lambda: security.SecureFjord(a.fjord_bin, work, certs),
                lambda b: security.run_security(b, rd, java, sizes, i), "security")

    rows = build_rows(res, ROWS + security.rows() + txn.rows(),
                      gb_of_parts=sizes["n_parts"] * 1024 / 1e9)
    scale = scaling_rows(res, sizes["scale_points"]) if "scaling" in a.only else []
    machine["elapsed_s"] = round(time.monotonic() - started)
    try:
        machine["loadavg_at_end"] = os.getloadavg()
    except OSError:
        pass
    params = {"mode": "quick" if a.quick else "full", **sizes,
              "clients": "librdkafka (fjord-bench, rdkafka crate) for the rows without "
                         "[Java]; kafka-tools ProducerPerformance/ConsumerPerformance 4.4.0 "
                         "for [Java]; rdkafka_performance (librdkafka's own, from rdkafka-sys' "
                         "source) for the rows marked [rdkafka_performance]; confluent-kafka "
                         "for the scaling curve's produce and the transactional produce "
                         "(e2e/bench/txn_client.py); kcat for cold start and recovery",
              "partitions": "1, except the rows that name their partition count",
              "cluster_brokers": CLUSTER_BROKERS,
              "cluster_replication_factor": 3, "cluster_min_insync_replicas": 2,
              "setups": sorted(a.only, key=SETUPS.index)}
    if "security" in a.only:
        params["security"] = {
            "protocols": list(security.PROTOCOLS), "sasl_mechanism": security.SCRAM_MECHANISM,
            "ssl_client_auth": "none", "certificate": "ECDSA P-256 (e2e/tls/certs.sh)",
            "negotiated_with_openssl_defaults": security.negotiated_summary(res)}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "params": params, "rows": rows,
                   "scaling_rows": scale, "failures": FAILURES, "raw": res}, f, indent=2)
    print_table(rows, machine, params)
    if scale:
        print_scaling(scale)
    charts_dir = os.environ.get("BENCH_CHARTS_DIR", os.path.join(a.root, "docs", "bench"))
    for png in charts.draw(rows, scale, machine, out_dir, charts_dir):
        print(f"wrote {png}")
    if os.environ.get("BENCH_README", "1") != "0":
        for section in write_readme(os.path.join(a.root, "README.md"), rows, scale, machine):
            print(f"wrote README.md section {section}")
    if "security" in a.only:
        security.print_goals(rows)
    print(f"\nwrote {os.path.join(out_dir, 'results.json')} ({machine['elapsed_s']} s)")
    for s in ("kafka", "fjord"):
        if not any(r[s] is not None for r in rows + scale):
            sys.exit(f"bench: {s} could not be measured at all")


if __name__ == "__main__":
    main()

