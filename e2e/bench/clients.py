"""The clients, the same for both systems: fjord-bench (librdkafka) and Kafka's own
ProducerPerformance / ConsumerPerformance."""
import json
import os
import re
import resource
import statistics
import subprocess
import time

from common import JAVA, fail, log

# Kafka's tools print "MB" meaning 2^20 bytes; every figure here is in 10^6 bytes.
MIB_TO_MB = 1024 * 1024 / 1e6
# ProducerPerformance's 5 s windows left out of its past-warm-up figure: 20 s.
JAVA_WARMUP_WINDOWS = 4


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

    def produce(self, bootstrap, topic, records, size, acks, throughput=-1, timeout=600,
                config=None, props=(), args=()):
        """`config`: a client properties file (security settings), as --command-config;
        `props`: more producer properties (key=value); `args`: more tool flags (e.g. its
        transaction mode)."""
        out = self.java("org.apache.kafka.tools.ProducerPerformance", [
            "--topic", topic, "--num-records", str(records), "--record-size", str(size),
            "--throughput", str(throughput), *args,
            *(["--command-config", config] if config else []), "--producer-props",
            f"bootstrap.servers={bootstrap}", f"acks={acks}", *props], timeout)
        # "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
        #  p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
        m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                      r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, "
                      r"(\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", out)
        if not m or int(m.group(1)) < records:
            fail(f"ProducerPerformance to {topic}: no summary for {records} records")
            return None
        # The tool's 5 s windows before the summary, kept to show where the JVM's warm-up
        # ends (the first window, and the second on a loaded machine, run slower).
        windows = [round(float(w.group(1)) * MIB_TO_MB, 1) for w in re.finditer(
            r"records sent, [\d.]+ records/sec \(([\d.]+) MB/sec\), [\d.]+ ms avg latency, "
            r"[\d.]+ ms max latency\.", out)]
        log(f"ProducerPerformance to {topic}: 5 s windows {windows} MB/s, whole run "
            f"{float(m.group(3)) * MIB_TO_MB:.1f} MB/s")
        # Past warm-up: the median of the windows after the first JAVA_WARMUP_WINDOWS (on
        # this machine, loaded, the producer's rate climbs for about 20 s: 0.1, 1.1, 3.2,
        # 5.9, then 11-29 MB/s in 5 s windows against one Kafka broker).
        steady = windows[JAVA_WARMUP_WINDOWS:]
        return {"msgs": float(m.group(2)), "MBps": float(m.group(3)) * MIB_TO_MB,
                "avg": float(m.group(4)), "p50": float(m.group(6)), "p95": float(m.group(7)),
                "p99": float(m.group(8)), "p999": float(m.group(9)), "windows_MBps": windows,
                "steady_MBps": statistics.median(steady) if len(steady) >= 2 else None}

    def consume(self, bootstrap, topic, records, timeout=300, config=None):
        out = self.java("org.apache.kafka.tools.ConsumerPerformance", [
            "--bootstrap-server", bootstrap, "--topic", topic,
            *(["--command-config", config] if config else []),
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

    def create_topic(self, bootstrap, topic, configs, replication_factor=1, extra=()):
        args = ["--bootstrap", bootstrap, "--topic", topic,
                "--replication-factor", str(replication_factor), *extra]
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

    def consume(self, bootstrap, topic, records, timeout=300, extra=()):
        r = self.run("consume", ["--bootstrap", bootstrap, "--topic", topic,
                                 "--count", str(records), *extra], timeout)
        if r is None:
            return None
        c = r["consume"]
        return {"MBps": c["MBps"], "msgs": c["msgs_per_s"], "elapsed_s": c["elapsed_s"],
                "from_assign_MBps": r["from_assign"]["MBps"],
                "first_record_ms": r["first_record_ms"], "client_cpu_s": r["client_cpu_s"]}




class RdPerf:
    """librdkafka's own load generator, rdkafka_performance, built from the librdkafka
    source rdkafka-sys bundles (tools/deps.sh): a client the project did not write, with
    the same producer settings as fjord-bench (linger.ms 5, batch.size 1 MB). Its MB/s are
    10^6 bytes per second; produce time runs to the last delivery report, consume time
    from the first record (after the group join) to the last."""

    PRODUCED = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered "
                          r"\(offset -?\d+, (\d+) failed\) in (\d+)ms: (\d+) msgs/s and "
                          r"([\d.]+) MB/s")
    CONSUMED = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) "
                          r"msgs/s \(([\d.]+) MB/s\)")

    def __init__(self, binary):
        self.bin = binary

    def run(self, what, args, timeout):
        if not self.bin:
            raise RuntimeError("no rdkafka_performance (RDKAFKA_PERF unset)")
        cpu0 = child_cpu_seconds()
        try:
            r = subprocess.run([self.bin, *args], capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            fail(f"rdkafka_performance {what}: no answer within {timeout}s")
            return None, None
        cpu = child_cpu_seconds() - cpu0
        if r.returncode != 0:
            fail(f"rdkafka_performance {what} exited {r.returncode}: "
                 f"{(r.stderr or r.stdout).strip()[-600:]}")
            return None, None
        return r.stdout, cpu

    def produce(self, bootstrap, topic, records, size, acks, timeout=600):
        out, cpu = self.run(f"produce to {topic}", [
            "-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-c", str(records),
            "-a", str(acks), "-X", "linger.ms=5", "-X", "batch.size=1000000"], timeout)
        m = list(self.PRODUCED.finditer(out or ""))
        if out is not None and (not m or int(m[-1].group(3)) < records or int(m[-1].group(4))):
            fail(f"rdkafka_performance produce to {topic}: not all of {records} delivered: "
                 f"{out.strip()[-300:]}")
            return None
        if not m:
            return None
        m = m[-1]
        return {"MBps": float(m.group(7)), "msgs": float(m.group(6)),
                "elapsed_s": int(m.group(5)) / 1000, "client_cpu_s": cpu}

    def consume(self, bootstrap, topic, records, timeout=300, extra=()):
        """`extra`: more arguments, e.g. ("-X", "isolation.level=read_committed")."""
        out, cpu = self.run(f"consume from {topic}", [
            "-G", f"bench-{topic}-{time.time_ns()}", "-t", topic, "-b", bootstrap,
            "-c", str(records), "-X", "auto.offset.reset=earliest", *extra], timeout)
        m = list(self.CONSUMED.finditer(out or ""))
        if out is not None and (not m or int(m[-1].group(1)) < records):
            fail(f"rdkafka_performance consume from {topic}: fewer than {records} records: "
                 f"{out.strip()[-300:]}")
            return None
        if not m:
            return None
        m = m[-1]
        return {"MBps": float(m.group(5)), "msgs": float(m.group(4)),
                "elapsed_s": int(m.group(3)) / 1000, "client_cpu_s": cpu}
