#!/usr/bin/env python3
"""Fjord vs Apache Kafka, same client, same machine, one system at a time: a single broker
in two durability profiles, then a cluster of three brokers on loopback with replication
factor 3.

Driven by e2e/bench.sh. Every figure is best effort: a workload that fails or times out
records null and the run goes on; the run fails only if a system could not be measured
at all (did not start, or produced no figure).
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
import urllib.request

KAFKA_PORT = int(os.environ.get("KAFKA_PORT", "19092"))
FJORD_PORT = int(os.environ.get("FJORD_PORT", "19192"))
FJORD_HTTP = int(os.environ.get("FJORD_HTTP_PORT", "19644"))
# The broker's internal listener (quorum, replication), bound even by a single broker; away
# from its default 9093 and from Kafka's controller port (KAFKA_PORT + 1).
FJORD_INTERNAL = int(os.environ.get("FJORD_INTERNAL_PORT", "19693"))
# The three-broker clusters: Kafka's client listeners on KAFKA_CLUSTER_PORT..+2 and its
# controllers on +3..+5 (e2e/apache-kafka.sh start-cluster); Fjord's Kafka listeners on
# FJORD_CLUSTER_PORT..+2, HTTP and internal listeners at `fjord dev`'s offsets from them.
KAFKA_CLUSTER_PORT = int(os.environ.get("KAFKA_CLUSTER_PORT", "19292"))
FJORD_CLUSTER_PORT = int(os.environ.get("FJORD_CLUSTER_PORT", "19392"))
CLUSTER_BROKERS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The same java the Kafka launcher picks.
JAVA = os.environ.get("JAVA") or (os.path.join(os.environ["JAVA_HOME"], "bin", "java")
                                  if os.environ.get("JAVA_HOME") else "java")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


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
    m = {"cores": os.cpu_count(), "kernel": os.uname().release}
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


# ---------------------------------------------------------------- /proc

def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is state (field 3); utime, stime are fields 14, 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_hwm_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- brokers

class Kafka:
    name = "kafka"

    def __init__(self, root, work, profile):
        self.script = os.path.join(root, "e2e", "apache-kafka.sh")
        self.dir = os.path.join(work, f"kafka-{profile}")
        self.port = KAFKA_PORT
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.fsync = profile == "fsync"
        shutil.rmtree(self.dir, ignore_errors=True)

    def launch(self):
        """Starts the process; returns a Popen that ends when the broker reports started."""
        return subprocess.Popen(["bash", self.script, "start", self.dir, str(self.port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, proc, timeout=180):
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return False
        if proc.returncode != 0:
            log(f"kafka start failed: {err.strip()[-2000:]}")
        return proc.returncode == 0

    def pid(self):
        try:
            with open(os.path.join(self.dir, "kafka.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        subprocess.run(["bash", self.script, "stop", self.dir], capture_output=True, timeout=90)

    def kill9(self):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
        try:
            os.unlink(os.path.join(self.dir, "kafka.pid"))
        except OSError:
            pass

    def topic_configs(self):
        # Kafka's per-write durability knob is the topic's flush.messages.
        return ["flush.messages=1"] if self.fsync else []


class Fjord:
    name = "fjord"

    def __init__(self, fjord_bin, work, profile):
        self.bin = fjord_bin
        self.dir = os.path.join(work, f"fjord-{profile}")
        self.port = FJORD_PORT
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.fsync = profile == "fsync"
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)

    def launch(self):
        args = [self.bin, "--data-dir", os.path.join(self.dir, "data"),
                "--kafka-listen", f"127.0.0.1:{self.port}",
                "--http-listen", f"127.0.0.1:{FJORD_HTTP}",
                "--internal-listen", f"127.0.0.1:{FJORD_INTERNAL}",
                # Kafka's launcher sets this to 0 too; the first group join is not waited on.
                "--group-initial-rebalance-delay-ms", "0"]
        if self.fsync:
            args += ["--log-flush-interval-messages", "1"]
        logf = open(os.path.join(self.dir, "fjord.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return self.proc

    def wait_ready(self, proc, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log(f"fjord exited with {proc.returncode}; see {self.dir}/fjord.log")
                return False
            if port_open(self.port):
                return True
            time.sleep(0.05)  # readiness poll interval
        return False

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def topic_configs(self):
        return ["flush.messages=1"] if self.fsync else []


class KafkaCluster:
    """Three combined broker+controller nodes with a static controller quorum, formatted
    with one cluster id; default replication factor 3, min.insync.replicas 2."""
    name = "kafka"

    def __init__(self, root, work):
        self.script = os.path.join(root, "e2e", "apache-kafka.sh")
        self.dir = os.path.join(work, "kafka-rf3")
        self.bootstrap = ",".join(f"127.0.0.1:{KAFKA_CLUSTER_PORT + i}"
                                  for i in range(CLUSTER_BROKERS))
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, timeout=300):
        try:
            r = subprocess.run(["bash", self.script, "start-cluster", self.dir,
                                str(KAFKA_CLUSTER_PORT), str(CLUSTER_BROKERS)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"kafka cluster did not start within {timeout}s")
            return False
        if r.returncode != 0:
            log(f"kafka cluster start failed: {r.stderr.strip()[-2000:]}")
        return r.returncode == 0

    def stop(self):
        subprocess.run(["bash", self.script, "stop-cluster", self.dir], capture_output=True,
                       timeout=120)


class FjordCluster:
    """Three brokers, all voters of the metadata quorum, as `fjord dev --brokers 3` plans
    them: default replication factor 3, min.insync.replicas 2."""
    name = "fjord"

    def __init__(self, fjord_bin, work):
        self.bin = fjord_bin
        self.dir = os.path.join(work, "fjord-rf3")
        self.procs = []
        self.nodes = fjord_cluster_nodes()
        self.bootstrap = ",".join(f"127.0.0.1:{n['kafka']}" for n in self.nodes)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)

    def start(self, timeout=120):
        voters = ",".join(f"{n['id']}@127.0.0.1:{n['internal']}" for n in self.nodes)
        for n in self.nodes:
            d = os.path.join(self.dir, f"node-{n['id']}")
            os.makedirs(d, exist_ok=True)
            args = [self.bin, "--node-id", str(n["id"]), "--voters", voters,
                    "--data-dir", os.path.join(d, "data"),
                    "--kafka-listen", f"127.0.0.1:{n['kafka']}",
                    "--http-listen", f"127.0.0.1:{n['http']}",
                    "--internal-listen", f"127.0.0.1:{n['internal']}",
                    "--default-replication-factor", "3", "--min-insync-replicas", "2",
                    "--group-initial-rebalance-delay-ms", "0"]
            logf = open(os.path.join(d, "fjord.log"), "ab")
            self.procs.append(subprocess.Popen(args, stdout=logf, stderr=logf,
                                               stdin=subprocess.DEVNULL,
                                               start_new_session=True))
        # Ready when every broker answers /ready 200: registered with the controller and
        # serving.
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending and time.monotonic() < deadline:
            for p, n in zip(self.procs, self.nodes):
                if p.poll() is not None:
                    log(f"fjord node {n['id']} exited with {p.returncode}; "
                        f"see {self.dir}/node-{n['id']}/fjord.log")
                    return False
            pending = [n for n in pending if not http_ok(n["http"], "/ready")]
            if pending:
                time.sleep(0.1)  # readiness poll interval
        if pending:
            log(f"fjord cluster not ready within {timeout}s: nodes "
                f"{[n['id'] for n in pending]}")
        return not pending

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def fjord_cluster_nodes():
    return [{"id": i + 1, "kafka": FJORD_CLUSTER_PORT + i, "http": FJORD_CLUSTER_PORT + 552 + i,
             "internal": FJORD_CLUSTER_PORT + 1000 + i} for i in range(CLUSTER_BROKERS)]


def http_ok(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # poll interval while the process exits


# ---------------------------------------------------------------- clients

class Tools:
    def __init__(self, classpath_file, root):
        with open(classpath_file) as f:
            self.cp = f.read().strip()
        self.log4j = os.path.join(root, "e2e", "apache-kafka", "log4j2.xml")

    def java(self, main, args, timeout):
        cmd = [JAVA, "-Xmx512m", "-XX:+UseG1GC", "-cp", self.cp,
               f"-Dlog4j2.configurationFile={self.log4j}", "-Dkafka.log.file=/dev/null",
               main, *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0:
                log(f"{main.rsplit('.', 1)[1]} exited {r.returncode}: "
                    f"{(r.stderr or r.stdout).strip()[-600:]}")
            return r.stdout
        except subprocess.TimeoutExpired as e:
            log(f"{main.rsplit('.', 1)[1]} timed out after {timeout}s")
            out = e.stdout
            return out.decode() if isinstance(out, bytes) else (out or "")

    def create_topic(self, bootstrap, topic, configs, replication_factor=1):
        args = ["--bootstrap-server", bootstrap, "--create", "--topic", topic,
                "--partitions", "1", "--replication-factor", str(replication_factor)]
        for c in configs:
            args += ["--config", c]
        out = self.java("org.apache.kafka.tools.TopicCommand", args, 60)
        return "Created topic" in out

    def produce(self, bootstrap, topic, records, size, acks, throughput=-1, timeout=600):
        out = self.java("org.apache.kafka.tools.ProducerPerformance", [
            "--topic", topic, "--num-records", str(records), "--record-size", str(size),
            "--throughput", str(throughput), "--producer-props",
            f"bootstrap.servers={bootstrap}", f"acks={acks}"], timeout)
        # "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
        #  p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
        m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                      r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, "
                      r"(\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", out)
        if not m:
            return None
        sent = int(m.group(1))
        if sent < records:
            return None
        return {"msgs": float(m.group(2)), "MBps": float(m.group(3)),
                "avg": float(m.group(4)), "p50": float(m.group(6)), "p95": float(m.group(7)),
                "p99": float(m.group(8)), "p999": float(m.group(9))}

    def consume(self, bootstrap, topic, records, timeout=300):
        out = self.java("org.apache.kafka.tools.ConsumerPerformance", [
            "--bootstrap-server", bootstrap, "--topic", topic,
            "--messages", str(records), "--timeout", "30000",
            "--group", f"bench-{topic}-{time.time_ns()}"], timeout)
        # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
        # nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 10:
                try:
                    n = int(float(parts[4]))
                    if n < records:
                        return None
                    return {"MBps": float(parts[3]), "msgs": float(parts[5]),
                            "fetch_MBps": float(parts[8]), "fetch_msgs": float(parts[9])}
                except ValueError:
                    continue
        return None


def kcat_ok(port, topic):
    try:
        r = subprocess.run(["kcat", "-P", "-b", f"127.0.0.1:{port}", "-t", topic,
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
    while time.monotonic() - t0 < deadline_s:
        if kcat_ok(broker.port, topic):
            first = time.monotonic() - t0
            break
        if isinstance(broker, Fjord) and proc.poll() is not None:
            break
        time.sleep(0.02)  # retry interval of the produce loop
    ready = broker.wait_ready(proc)
    return first, ready


# ---------------------------------------------------------------- one system, one profile

def run_system(broker, tools, sizes, profile, full):
    """Returns a dict of figures for one system in one durability profile."""
    r = {}
    log(f"{broker.name} [{profile}]: fresh start")
    if not broker.wait_ready(broker.launch()):
        return None
    bootstrap = broker.bootstrap
    cfg = broker.topic_configs()
    for t in ["cold", "p1k", "p100", "lat", "acksall"]:
        if not tools.create_topic(bootstrap, t, cfg):
            log(f"{broker.name}: could not create topic {t}")
    if profile == "default":
        # Cold start: stop, then time a fresh process to its first acknowledged produce.
        broker.stop()
        log(f"{broker.name}: cold start")
        first, ready = timed_start(broker, "cold", 180)
        r["cold_start_s"] = first
        if not ready:
            return r or None
    pid = broker.pid()

    log(f"{broker.name} [{profile}]: produce {sizes['n1k']} x 1KB acks=1")
    cpu0 = proc_cpu_seconds(pid)
    p = tools.produce(bootstrap, "p1k", sizes["n1k"], 1024, 1)
    cpu1 = proc_cpu_seconds(pid)
    r["p1k"] = p
    if p and cpu0 is not None and cpu1 is not None:
        r["cpu_s_per_gb"] = (cpu1 - cpu0) / (sizes["n1k"] * 1024 / 1e9)

    log(f"{broker.name} [{profile}]: produce 1KB acks=all")
    r["acksall"] = tools.produce(bootstrap, "acksall", sizes["n1k_all"], 1024, "all")

    if profile == "default":
        log(f"{broker.name}: produce {sizes['n100']} x 100B acks=1")
        r["p100"] = tools.produce(bootstrap, "p100", sizes["n100"], 100, 1)
        log(f"{broker.name}: consume 1KB")
        r["consume"] = tools.consume(bootstrap, "p1k", sizes["n1k"]) if p else None
        log(f"{broker.name}: latency at {sizes['lat_rate']} msg/s x 1KB")
        r["lat"] = tools.produce(bootstrap, "lat", sizes["n_lat"], 1024, 1,
                                 throughput=sizes["lat_rate"])
        r["rss_mb"] = proc_hwm_mb(pid)
        if full:
            r["recovery_s"] = recovery(broker, tools, sizes)
    broker.stop()
    return r


def run_cluster(cluster, tools, sizes):
    """Figures for one system as a three-broker cluster, replication factor 3, acks=all;
    durability as in the single-broker default rows (no fsync per write)."""
    log(f"{cluster.name} [3 brokers]: fresh start")
    if not cluster.start():
        return None
    r = {}
    for t in ("rf3p1k", "rf3p100"):
        if not tools.create_topic(cluster.bootstrap, t, [], replication_factor=3):
            log(f"{cluster.name}: could not create topic {t}")
    log(f"{cluster.name} [3 brokers]: produce {sizes['n1k_all']} x 1KB acks=all RF=3")
    r["rf3_p1k"] = tools.produce(cluster.bootstrap, "rf3p1k", sizes["n1k_all"], 1024, "all")
    log(f"{cluster.name} [3 brokers]: produce {sizes['n100_all']} x 100B acks=all RF=3")
    r["rf3_p100"] = tools.produce(cluster.bootstrap, "rf3p100", sizes["n100_all"], 100, "all")
    cluster.stop()
    return r


def recovery(broker, tools, sizes):
    """Fill a topic with a large log, kill -9, time restart to first produce."""
    bootstrap = broker.bootstrap
    if not tools.create_topic(bootstrap, "big", broker.topic_configs()):
        return None
    n = sizes["recovery_bytes"] // 1024
    log(f"{broker.name}: filling {sizes['recovery_bytes'] / 1e9:.1f} GB for the recovery run")
    if not tools.produce(bootstrap, "big", n, 1024, 1, timeout=3600):
        return None
    broker.kill9()
    log(f"{broker.name}: restart after kill -9")
    first, _ = timed_start(broker, "big", 900)
    return first


# ---------------------------------------------------------------- table

def build_rows(res, machine):
    k, f = res.get("kafka", {}), res.get("fjord", {})
    kd, fd = k.get("default") or {}, f.get("default") or {}
    ks, fs = k.get("fsync") or {}, f.get("fsync") or {}
    kc, fc = k.get("rf3") or {}, f.get("rf3") or {}

    def g(d, *path):
        for p in path:
            if not isinstance(d, dict):
                return None
            d = d.get(p)
        return d

    rows = []

    def row(name, unit, kv, fv, hib, note=None):
        rows.append({"name": name, "unit": unit, "kafka": kv, "fjord": fv,
                     "higher_is_better": hib, **({"note": note} if note else {})})

    row("produce 1KB acks=1 1 broker", "MB/s", g(kd, "p1k", "MBps"), g(fd, "p1k", "MBps"), True)
    row("produce 1KB acks=1 1 broker", "msgs/s", g(kd, "p1k", "msgs"), g(fd, "p1k", "msgs"), True)
    row("produce 100B acks=1 1 broker", "MB/s", g(kd, "p100", "MBps"), g(fd, "p100", "MBps"), True)
    row("produce 100B acks=1 1 broker", "msgs/s", g(kd, "p100", "msgs"), g(fd, "p100", "msgs"),
        True)
    row("produce 1KB acks=all 1 broker", "MB/s", g(kd, "acksall", "MBps"),
        g(fd, "acksall", "MBps"), True)
    row("produce 1KB acks=all RF=3", "MB/s", g(kc, "rf3_p1k", "MBps"), g(fc, "rf3_p1k", "MBps"),
        True)
    row("produce 100B acks=all RF=3", "MB/s", g(kc, "rf3_p100", "MBps"),
        g(fc, "rf3_p100", "MBps"), True)
    row("produce 100B acks=all RF=3", "msgs/s", g(kc, "rf3_p100", "msgs"),
        g(fc, "rf3_p100", "msgs"), True)
    row("produce 1KB acks=1 1 broker fsync per batch", "MB/s", g(ks, "p1k", "MBps"),
        g(fs, "p1k", "MBps"), True)
    row("produce 1KB acks=all 1 broker fsync per batch", "MB/s", g(ks, "acksall", "MBps"),
        g(fs, "acksall", "MBps"), True)
    row("consume 1KB from page cache", "MB/s", g(kd, "consume", "fetch_MBps"),
        g(fd, "consume", "fetch_MBps"), True)
    for q, label in [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")]:
        row(f"produce {label} latency at fixed rate", "ms", g(kd, "lat", q), g(fd, "lat", q),
            False)
    row("broker peak RSS", "MB", kd.get("rss_mb"), fd.get("rss_mb"), False)
    row("broker CPU seconds per GB", "s/GB", kd.get("cpu_s_per_gb"), fd.get("cpu_s_per_gb"),
        False)
    row("cold start", "s", kd.get("cold_start_s"), fd.get("cold_start_s"), False)
    rec_note = None if ("recovery_s" in kd or "recovery_s" in fd) else "n/a (full run only)"
    row("recovery after kill -9", "s", kd.get("recovery_s"), fd.get("recovery_s"), False,
        rec_note)
    for r in rows:
        for s in ("kafka", "fjord"):
            if isinstance(r[s], float):
                r[s] = round(r[s], 3 if abs(r[s]) < 10 else 1)
    return rows


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def print_table(rows, machine, params):
    hdr = ["row", "unit", "Kafka", "Fjord", "Fjord/Kafka"]
    lines = []
    for r in rows:
        if r.get("note") and r["kafka"] is None and r["fjord"] is None:
            lines.append([r["name"], r["unit"], r["note"], "", ""])
            continue
        ratio = "-"
        if r["kafka"] and r["fjord"] is not None:
            ratio = f"{r['fjord'] / r['kafka']:.2f}x"
        lines.append([r["name"], r["unit"], fmt(r["kafka"]), fmt(r["fjord"]), ratio])
    w = [max(len(str(x[i])) for x in lines + [hdr]) for i in range(5)]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for x in lines:
        out.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |")
    print("\n".join(out))
    print()
    print("Machine limits (same run):")
    for k, v in machine.items():
        print(f"  {k}: {v}")
    lb = machine.get("loopback_tcp_MBps")
    cons = next((r["fjord"] for r in rows if r["name"] == "consume 1KB from page cache"), None)
    prod = next((r["fjord"] for r in rows
                 if r["name"] == "produce 1KB acks=1 1 broker" and r["unit"] == "MB/s"), None)
    if lb and cons:
        print(f"  Fjord consume 1KB = {cons / lb:.1%} of loopback TCP bandwidth")
    if lb and prod:
        print(f"  Fjord produce 1KB acks=1 = {prod / lb:.1%} of loopback TCP bandwidth")
    d = machine.get("disk_seq_write_MBps")
    if d and prod:
        print(f"  Fjord produce 1KB acks=1 = {prod / d:.1%} of sequential disk write")
    fs = next((r["fjord"] for r in rows
               if r["name"] == "produce 1KB acks=1 1 broker fsync per batch"), None)
    # The producer's batches are 16 KiB (batch.size default), so the comparable disk
    # figure is 16 KiB writes each followed by a sync.
    dsync = machine.get("disk_seq_write_fdatasync_per_16KiB_MBps")
    if dsync and fs:
        print(f"  Fjord produce 1KB fsync per batch = {fs / dsync:.1%} of 16 KiB dsync writes")
    print(f"Parameters: {json.dumps(params)}")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--fjord-bin", required=True)
    ap.add_argument("--classpath-file", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    a = ap.parse_args()

    out_dir = os.path.join(a.root, "target", "bench")
    work = os.environ.get("BENCH_DIR", os.path.join(out_dir, "run"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    cluster_ports = ([KAFKA_CLUSTER_PORT + i for i in range(2 * CLUSTER_BROKERS)]
                     + [n[k] for n in fjord_cluster_nodes() for k in ("kafka", "http", "internal")])
    for p in (KAFKA_PORT, KAFKA_PORT + 1, FJORD_PORT, FJORD_HTTP, FJORD_INTERNAL,
              *cluster_ports):
        if port_open(p):
            sys.exit(f"bench: 127.0.0.1:{p} is in use")

    if a.quick:
        # About 7 minutes here for the single-broker rows and 4 more for the three-broker
        # ones (12 in all on a loaded machine); the latency run is 30 s per system so that
        # the client's JIT warm-up in its first second stays out of the p99.
        sizes = {"n1k": 500_000, "n1k_all": 200_000, "n100": 2_000_000, "n100_all": 1_000_000,
                 "lat_rate": 5_000, "n_lat": 150_000}
    else:
        sizes = {"n1k": 2_000_000, "n1k_all": 1_000_000, "n100": 10_000_000,
                 "n100_all": 5_000_000,
                 "lat_rate": 5_000, "n_lat": 600_000,
                 "recovery_bytes": int(os.environ.get("BENCH_RECOVERY_BYTES", 5 * 10**9))}
    fsync_sizes = dict(sizes, n1k=sizes["n1k"] // 4, n1k_all=sizes["n1k_all"] // 4)
    started = time.monotonic()
    machine = machine_limits(work, a.quick)
    tools = Tools(a.classpath_file, a.root)

    res = {"kafka": {}, "fjord": {}}
    current = [None]

    def cleanup(*_):
        if current[0] is not None:
            current[0].stop()
        sys.exit(130)

    signal.signal(signal.SIGINT, cleanup)
    signal.signal(signal.SIGTERM, cleanup)
    for profile, sz in [("default", sizes), ("fsync", fsync_sizes)]:
        for mk in (lambda: Kafka(a.root, work, profile),
                   lambda: Fjord(a.fjord_bin, work, profile)):
            b = mk()
            current[0] = b
            try:
                res[b.name][profile] = run_system(b, tools, sz, profile, not a.quick)
            except Exception as e:  # a figure, never a failure
                log(f"{b.name} [{profile}] failed: {e!r}")
                res[b.name][profile] = None
            finally:
                b.stop()
                current[0] = None
            if not a.keep:
                shutil.rmtree(b.dir, ignore_errors=True)
    for mk in (lambda: KafkaCluster(a.root, work), lambda: FjordCluster(a.fjord_bin, work)):
        c = mk()
        current[0] = c
        try:
            res[c.name]["rf3"] = run_cluster(c, tools, sizes)
        except Exception as e:  # a figure, never a failure
            log(f"{c.name} [3 brokers] failed: {e!r}")
            res[c.name]["rf3"] = None
        finally:
            c.stop()
            current[0] = None
        if not a.keep:
            shutil.rmtree(c.dir, ignore_errors=True)

    rows = build_rows(res, machine)
    machine["elapsed_s"] = round(time.monotonic() - started)
    params = {"mode": "quick" if a.quick else "full", **sizes,
              "client": "kafka-tools ProducerPerformance/ConsumerPerformance 4.4.0, kcat",
              "partitions": 1, "cluster_brokers": CLUSTER_BROKERS,
              "cluster_replication_factor": 3, "cluster_min_insync_replicas": 2}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "params": params, "rows": rows, "raw": res}, f,
                  indent=2)
    print_table(rows, machine, params)
    print(f"\nwrote {os.path.join(out_dir, 'results.json')}")
    for s in ("kafka", "fjord"):
        if not any(r[s] is not None for r in rows):
            sys.exit(f"bench: {s} could not be measured at all")


if __name__ == "__main__":
    main()
