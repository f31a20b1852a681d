#!/usr/bin/env python3
"""Fjord vs Apache Kafka, same clients, same machine, one system at a time: a single broker
in two durability profiles, then a cluster of three brokers on loopback with replication
factor 3. Each setup runs several rounds, alternating Kafka and Fjord (K, F, K, F, ...),
each on a fresh data directory; the table shows the median and the spread of the rounds.

The clients: fjord-bench (librdkafka through the rdkafka crate) for the main rows, Kafka's
own ProducerPerformance / ConsumerPerformance for the rows marked [Java], kcat for cold
start and recovery.

Driven by e2e/bench.sh. Every figure is best effort: a workload that fails or times out
is logged, listed under the table and in results.json ("failures") and records null, and
the run goes on; the run fails only if a system could not be measured at all.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
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

# Kafka's tools print "MB" meaning 2^20 bytes; every figure here is in 10^6 bytes.
MIB_TO_MB = 1024 * 1024 / 1e6


def child_cpu_seconds():
    """utime+stime of this process's reaped children: the difference across one blocking
    client run is that client's CPU time (brokers are reaped only when stopped)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Java:
    """Kafka's own ProducerPerformance / ConsumerPerformance from the kafka-tools jar."""

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
                fail(f"{main.rsplit('.', 1)[1]} exited {r.returncode}: "
                     f"{(r.stderr or r.stdout).strip()[-600:]}")
            return r.stdout
        except subprocess.TimeoutExpired as e:
            fail(f"{main.rsplit('.', 1)[1]} timed out after {timeout}s")
            out = e.stdout
            return out.decode() if isinstance(out, bytes) else (out or "")

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
        if not m or int(m.group(1)) < records:
            fail(f"ProducerPerformance to {topic}: no summary for {records} records")
            return None
        return {"msgs": float(m.group(2)), "MBps": float(m.group(3)) * MIB_TO_MB,
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
                    if int(float(parts[4])) < records:
                        break
                    return {"MBps": float(parts[3]) * MIB_TO_MB, "msgs": float(parts[5]),
                            "fetch_MBps": float(parts[8]) * MIB_TO_MB,
                            "fetch_msgs": float(parts[9])}
                except ValueError:
                    continue
        fail(f"ConsumerPerformance from {topic}: fewer than {records} records read")
        return None


class RdBench:
    """fjord-bench (e2e/src/bin/fjord-bench.rs): librdkafka through the rdkafka crate. Each
    call returns the run's JSON report plus `client_cpu_s`, or None after logging why; a
    run with any delivery or consume error exits non-zero and gives None."""

    def __init__(self, binary):
        self.bin = binary

    def run(self, sub, args, timeout=600):
        cmd = [self.bin, sub, *args, "--timeout-s", str(timeout)]
        cpu0 = child_cpu_seconds()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            fail(f"fjord-bench {sub} {' '.join(args)}: no answer within {timeout + 60}s")
            return None
        cpu = child_cpu_seconds() - cpu0
        report = None
        for line in reversed(r.stdout.splitlines()):
            if line.startswith("{"):
                report = json.loads(line)
                break
        if r.returncode != 0 or report is None:
            fail(f"fjord-bench {sub} {' '.join(args)} exited {r.returncode}: "
                 f"{r.stderr.strip()[-800:]}")
            return None
        report["client_cpu_s"] = cpu
        return report

    def create_topic(self, bootstrap, topic, configs, replication_factor=1):
        args = ["--bootstrap", bootstrap, "--topic", topic,
                "--replication-factor", str(replication_factor)]
        for c in configs:
            args += ["--config", c]
        return self.run("create-topic", args, timeout=60) is not None

    def produce(self, bootstrap, topic, records, size, acks, timeout=600, extra=()):
        r = self.run("produce", ["--bootstrap", bootstrap, "--topic", topic,
                                 "--count", str(records), "--size", str(size),
                                 "--acks", str(acks), *extra], timeout)
        if r is None:
            return None
        p = r["produce"]
        return {"MBps": p["MBps"], "msgs": p["msgs_per_s"], "elapsed_s": p["elapsed_s"],
                "client_cpu_s": r["client_cpu_s"]}

    def at_rate(self, bootstrap, topic, records, size, acks, rate, end_to_end, linger_ms=5):
        r = self.run("end-to-end" if end_to_end else "latency",
                     ["--bootstrap", bootstrap, "--topic", topic, "--count", str(records),
                      "--size", str(size), "--acks", str(acks), "--rate", str(rate),
                      "--linger-ms", str(linger_ms)],
                     timeout=records // rate + 120)
        if r is None:
            return None
        out = {"p50": r["ack_latency"]["p50_ms"], "p99": r["ack_latency"]["p99_ms"],
               "p999": r["ack_latency"]["p999_ms"],
               "sender_behind_max_ms": r["sender_behind_max_ms"]}
        if end_to_end:
            e = r["e2e_latency"]
            out.update({"e2e_p50": e["p50_ms"], "e2e_p99": e["p99_ms"],
                        "e2e_p999": e["p999_ms"]})
        return out

    def consume(self, bootstrap, topic, records, timeout=300):
        r = self.run("consume", ["--bootstrap", bootstrap, "--topic", topic,
                                 "--count", str(records)], timeout)
        if r is None:
            return None
        c = r["consume"]
        return {"MBps": c["MBps"], "msgs": c["msgs_per_s"], "elapsed_s": c["elapsed_s"],
                "from_assign_MBps": r["from_assign"]["MBps"],
                "first_record_ms": r["first_record_ms"], "client_cpu_s": r["client_cpu_s"]}


FAILURES = []
# The codecs of the validation-cost rows (librdkafka's compression.type values).
CODECS = ("none", "lz4", "zstd")


def fail(msg):
    """A workload that failed: logged now, listed again under the table and in
    results.json, and its figure left null."""
    FAILURES.append(msg)
    log(f"FAILED: {msg}")


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


class Profiler:
    """`perf record -g` on one broker process for the length of one workload; the report
    (flat profile by symbol, self time) lands in target/bench/perf-<name>.txt."""

    def __init__(self, out_dir, enabled):
        self.out_dir = out_dir
        self.enabled = enabled and shutil.which("perf") is not None
        self.proc = None

    def start(self, pid, name):
        if not self.enabled or not pid:
            return
        self.name = name
        self.data = os.path.join(self.out_dir, f"perf-{name}.data")
        self.err = open(os.path.join(self.out_dir, f"perf-{name}.log"), "w")
        self.proc = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", str(pid),
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
            subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                            "--percent-limit", "0.5", "-g", "none", "--sort", "dso,symbol"],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=300)
        log(f"profile written to {txt}")
        try:
            os.unlink(self.data)
        except OSError:
            pass


# ---------------------------------------------------------------- one system, one profile

def measured(broker_pid, fn):
    """Runs one workload; adds the broker's CPU seconds across it to the result."""
    cpu0 = proc_cpu_seconds(broker_pid)
    r = fn()
    cpu1 = proc_cpu_seconds(broker_pid)
    if r is not None and cpu0 is not None and cpu1 is not None:
        r["broker_cpu_s"] = cpu1 - cpu0
    return r


def run_system(broker, rd, java, sizes, profile, rnd, profiler):
    """Figures for one system in one durability profile, in round `rnd` (Kafka's Java
    tools run only in the first `java_rounds` rounds)."""
    r = {}
    log(f"{broker.name} [{profile}] round {rnd + 1}: fresh start")
    if not broker.wait_ready(broker.launch()):
        fail(f"{broker.name} [{profile}] did not start")
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
        first, ready = timed_start(broker, "cold", 180)
        r["cold_start_s"] = first
        if not ready:
            fail(f"{broker.name}: not ready after the cold start")
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

    log(f"{broker.name} [{profile}]: produce {n1k} x 1KB acks=1 (librdkafka)")
    prof = profile == "default" and rnd == 0 and isinstance(broker, Fjord)
    if prof:
        profiler.start(pid, "fjord-produce-1k")
    p = measured(pid, lambda: rd.produce(bootstrap, "p1k", n1k, 1024, 1))
    if prof:
        profiler.stop()
    r["p1k"] = p
    gb = n1k * 1024 / 1e9
    if p and "broker_cpu_s" in p:
        r["cpu_s_per_gb"] = p["broker_cpu_s"] / gb
    if p:
        r["p1k_client_cpu_s_per_gb"] = p["client_cpu_s"] / gb

    log(f"{broker.name} [{profile}]: produce {n1k_all} x 1KB acks=all (librdkafka)")
    r["acksall"] = measured(pid, lambda: rd.produce(bootstrap, "acksall", n1k_all, 1024, "all"))
    if with_java:
        log(f"{broker.name} [{profile}]: produce 1KB acks=1 and acks=all (Java)")
        r["j1k"] = java.produce(bootstrap, "j1k", n_j1k, 1024, 1)
        r["jacksall"] = java.produce(bootstrap, "jacksall", n_j1k_all, 1024, "all")

    if profile == "default":
        log(f"{broker.name}: produce {sizes['n100']} x 100B acks=1 (librdkafka)")
        r["p100"] = measured(pid, lambda: rd.produce(bootstrap, "p100", sizes["n100"], 100, 1))
        log(f"{broker.name}: consume {n1k} x 1KB (librdkafka)")
        if prof:
            profiler.start(pid, "fjord-consume-1k")
        r["consume"] = measured(pid, lambda: rd.consume(bootstrap, "p1k", n1k)) if p else None
        if prof:
            profiler.stop()
        if r["consume"]:
            r["consume_client_cpu_s_per_gb"] = r["consume"]["client_cpu_s"] / gb
        # Validation cost: the same JSON-like 1 KB records uncompressed, lz4 and zstd
        # (librdkafka's default level); both brokers decompress every batch to check its
        # records, so broker CPU per GB of record values is what the check costs.
        n_text = sizes["n_text"]
        for codec in CODECS:
            log(f"{broker.name}: produce {n_text} x 1KB text, {codec} (librdkafka)")
            t = measured(pid, lambda: rd.produce(
                bootstrap, f"text-{codec}", n_text, 1024, 1,
                extra=["--payload", "text", "-X", f"compression.type={codec}"]))
            r[f"text_{codec}"] = t
            if t and "broker_cpu_s" in t:
                r[f"text_{codec}_cpu_s_per_gb"] = t["broker_cpu_s"] / (n_text * 1024 / 1e9)
        rate, n_lat = sizes["lat_rate"], sizes["n_lat"]
        log(f"{broker.name}: produce-to-ack latency at {rate} msg/s x 1KB (librdkafka)")
        r["lat"] = rd.at_rate(bootstrap, "lat", n_lat, 1024, 1, rate, False)
        log(f"{broker.name}: end-to-end latency at {rate} msg/s x 1KB (librdkafka)")
        r["e2e"] = rd.at_rate(bootstrap, "e2e", n_lat, 1024, 1, rate, True)
        # With linger.ms=0 each record leaves the client at once, one produce request
        # each: what remains of the latency is the round trip and the broker. The rate
        # is lower than above because here it is a rate of requests, and Kafka on this
        # machine queues at 5,000 requests/s (p50 above 100 ms).
        rate0 = sizes["lat0_rate"]
        log(f"{broker.name}: produce-to-ack latency at {rate0} msg/s x 1KB, linger.ms=0")
        r["lat0"] = rd.at_rate(bootstrap, "lat0", sizes["n_lat0"], 1024, 1, rate0, False,
                               linger_ms=0)
        if with_java:
            log(f"{broker.name}: 100B, consume and latency (Java)")
            r["j100"] = java.produce(bootstrap, "j100", sizes["n_j100"], 100, 1)
            r["jconsume"] = java.consume(bootstrap, "j1k", n_j1k) if r["j1k"] else None
            r["jlat"] = java.produce(bootstrap, "jlat", sizes["n_jlat"], 1024, 1,
                                     throughput=rate)
        r["rss_mb"] = proc_hwm_mb(pid)
        if sizes.get("recovery_bytes") and rnd == 0:
            r["recovery_s"] = recovery(broker, rd, sizes)
    broker.stop()
    return r


def run_cluster(cluster, rd, java, sizes, rnd):
    """Figures for one system as a three-broker cluster, replication factor 3; durability
    as in the single-broker default rows (no fsync per write)."""
    log(f"{cluster.name} [3 brokers] round {rnd + 1}: fresh start")
    t0 = time.monotonic()
    if not cluster.start():
        fail(f"{cluster.name} [3 brokers] did not start")
        return None
    r = {"start_s": time.monotonic() - t0}
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
    r["rf3_p1k"] = rd.produce(b, "rf3p1k", n1k, 1024, "all")
    log(f"{cluster.name} [3 brokers]: produce {n100} x 100B acks=all RF=3")
    r["rf3_p100"] = rd.produce(b, "rf3p100", n100, 100, "all")
    log(f"{cluster.name} [3 brokers]: produce {n1k} x 1KB acks=1 RF=3")
    r["rf3_a1"] = rd.produce(b, "rf3a1", n1k, 1024, 1)
    if with_java:
        log(f"{cluster.name} [3 brokers]: produce 1KB acks=all RF=3 (Java)")
        r["jrf3_p1k"] = java.produce(b, "jrf3p1k", sizes["n_jrf3_1k"], 1024, "all")
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
    first, _ = timed_start(broker, "big", 900)
    return first


# ---------------------------------------------------------------- table

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
    ("produce 100B acks=1 1 broker [Java]", "MB/s", "default", ("j100", "MBps"), True, "java"),
    ("produce 1KB acks=all 1 broker [Java]", "MB/s", "default", ("jacksall", "MBps"), True,
     "java"),
    ("produce 1KB acks=all RF=3 [Java]", "MB/s", "rf3", ("jrf3_p1k", "MBps"), True, "java"),
    ("produce 1KB acks=1 1 broker fsync per batch [Java]", "MB/s", "fsync", ("j1k", "MBps"),
     True, "java"),
    ("consume 1KB from page cache [Java]", "MB/s", "default", ("jconsume", "fetch_MBps"), True,
     "java"),
    ("produce p99 latency at fixed rate [Java]", "ms", "default", ("jlat", "p99"), False,
     "java"),
]


def rnd(v):
    return round(v, 3 if abs(v) < 10 else 1) if isinstance(v, float) else v


def build_rows(res, sizes):
    """One row per figure: the median over the rounds that produced it, with every
    round's value in kafka_runs / fjord_runs (null where a round failed)."""
    rows = []
    for name, unit, profile, path, hib, client in ROWS:
        row = {"name": name, "unit": unit, "client": client, "higher_is_better": hib}
        for s in ("kafka", "fjord"):
            runs = [get(r, *path) for r in res[s].get(profile, [])]
            vals = [v for v in runs if v is not None]
            row[s] = rnd(statistics.median(vals)) if vals else None
            row[f"{s}_runs"] = [rnd(v) for v in runs]
        if name == "recovery after kill -9" and row["kafka"] is None and row["fjord"] is None:
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


def print_table(rows, machine, params):
    hdr = ["row", "unit", "client", "Kafka", "Fjord", "Fjord/Kafka", "Kafka min-max",
           "Fjord min-max"]
    lines = []
    for r in rows:
        if r.get("note"):
            lines.append([r["name"], r["unit"], r["client"], r["note"], "", "", "", ""])
            continue
        ratio = "-"
        if r["kafka"] and r["fjord"] is not None:
            ratio = f"{r['fjord'] / r['kafka']:.2f}x"
        lines.append([r["name"], r["unit"], r["client"], fmt(r["kafka"]), fmt(r["fjord"]), ratio,
                      spread(r["kafka_runs"]), spread(r["fjord_runs"])])
    w = [max(len(str(x[i])) for x in lines + [hdr]) for i in range(len(hdr))]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for x in lines:
        out.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |")
    print("\n".join(out))
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
    if FAILURES:
        print(f"\n{len(FAILURES)} workload(s) FAILED (their figures are missing):")
        for f in FAILURES:
            print(f"  - {f}")
    print(f"Parameters: {json.dumps(params)}")


# ---------------------------------------------------------------- main

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
        # About 14 minutes here on a loaded machine: three rounds, Kafka's Java tools in
        # the first only, record counts such that the slower system's run lasts several
        # seconds. The librdkafka latency runs are 8 s and 6 s (the first second left
        # out), the Java one 15 s so that its JIT warm-up is a small part of it.
        sizes = {"rounds": 3, "java_rounds": 1,
                 "n1k": 600_000, "n1k_all": 300_000, "n100": 2_000_000,
                 "n1k_fsync": 75_000, "n1k_all_fsync": 50_000,
                 "n_rf3_1k": 200_000, "n_rf3_100": 500_000,
                 "lat_rate": 5_000, "n_lat": 40_000, "lat0_rate": 1_000, "n_lat0": 6_000,
                 "n_j1k": 200_000, "n_j1k_all": 100_000, "n_j100": 500_000,
                 "n_j1k_fsync": 20_000, "n_j1k_all_fsync": 10_000, "n_jrf3_1k": 30_000,
                 "n_jlat": 75_000, "n_warm": 200_000, "n_text": 300_000}
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
                 "recovery_bytes": int(os.environ.get("BENCH_RECOVERY_BYTES", 5 * 10**9))}
    sizes["rounds"] = int(os.environ.get("BENCH_ROUNDS", sizes["rounds"]))
    # BENCH_SCALE multiplies every record count (a smoke run of the script: 0.05).
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    for k in sizes:
        if k.startswith("n"):
            sizes[k] = max(1, int(sizes[k] * scale))
    started = time.monotonic()
    machine = machine_limits(work, a.quick)
    rd = RdBench(a.client_bin)
    java = Java(a.classpath_file, a.root)
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
            fail(f"{b.name} [{key}]: {e!r}")
            out = None
        finally:
            b.stop()
            current[0] = None
        if not a.keep:
            shutil.rmtree(b.dir, ignore_errors=True)
        res[b.name].setdefault(key, []).append(out)

    # Alternating: Kafka, Fjord, Kafka, Fjord, ... for each profile, each run on a fresh
    # data directory, so slow drift in the machine's load hits both systems alike.
    for profile in ("default", "fsync"):
        for i in range(sizes["rounds"]):
            one(lambda: Kafka(a.root, work, profile),
                lambda b: run_system(b, rd, java, sizes, profile, i, profiler), profile)
            one(lambda: Fjord(a.fjord_bin, work, profile),
                lambda b: run_system(b, rd, java, sizes, profile, i, profiler), profile)
    for i in range(sizes["rounds"]):
        one(lambda: KafkaCluster(a.root, work), lambda c: run_cluster(c, rd, java, sizes, i),
            "rf3")
        one(lambda: FjordCluster(a.fjord_bin, work), lambda c: run_cluster(c, rd, java, sizes, i),
            "rf3")

    rows = build_rows(res, sizes)
    machine["elapsed_s"] = round(time.monotonic() - started)
    try:
        machine["loadavg_at_end"] = os.getloadavg()
    except OSError:
        pass
    params = {"mode": "quick" if a.quick else "full", **sizes,
              "clients": "librdkafka (fjord-bench, rdkafka crate) for the rows without "
                         "[Java]; kafka-tools ProducerPerformance/ConsumerPerformance 4.4.0 "
                         "for [Java]; kcat for cold start and recovery",
              "partitions": 1, "cluster_brokers": CLUSTER_BROKERS,
              "cluster_replication_factor": 3, "cluster_min_insync_replicas": 2}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "params": params, "rows": rows, "failures": FAILURES,
                   "raw": res}, f, indent=2)
    print_table(rows, machine, params)
    print(f"\nwrote {os.path.join(out_dir, 'results.json')} ({machine['elapsed_s']} s)")
    for s in ("kafka", "fjord"):
        if not any(r[s] is not None for r in rows):
            sys.exit(f"bench: {s} could not be measured at all")


if __name__ == "__main__":
    main()
