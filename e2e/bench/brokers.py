"""The systems under test, started one at a time on loopback: one Kafka or Fjord broker,
and three-broker clusters of each."""
import os
import shutil
import signal
import subprocess
import time
import urllib.request

from common import log, port_open

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
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=self.env())

    def env(self):
        """The launcher's environment (None: this process's)."""
        return None

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
                *self.listener_args(),
                "--http-listen", f"127.0.0.1:{FJORD_HTTP}",
                "--internal-listen", f"127.0.0.1:{FJORD_INTERNAL}",
                # Kafka's launcher sets this to 0 too; the first group join is not waited on.
                "--group-initial-rebalance-delay-ms", "0"]
        if self.fsync:
            args += ["--log-flush-interval-messages", "1"]
        logf = open(os.path.join(self.dir, "fjord.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=self.env())
        return self.proc

    def listener_args(self):
        """The Kafka listener flags: one PLAINTEXT listener on self.port."""
        return ["--kafka-listen", f"127.0.0.1:{self.port}"]

    def env(self):
        """The broker's environment (None: this process's)."""
        return None

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

    def __init__(self, root, work, name="kafka-rf3"):
        self.script = os.path.join(root, "e2e", "apache-kafka.sh")
        self.dir = os.path.join(work, name)
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

    def pids(self):
        out = []
        for i in range(CLUSTER_BROKERS):
            try:
                with open(os.path.join(self.dir, f"node-{i + 1}", "kafka.pid")) as f:
                    out.append(int(f.read().strip()))
            except (OSError, ValueError):
                out.append(None)
        return out

    def stop(self):
        subprocess.run(["bash", self.script, "stop-cluster", self.dir], capture_output=True,
                       timeout=240)


class FjordCluster:
    """Three brokers, all voters of the metadata quorum, as `fjord dev --brokers 3` plans
    them: default replication factor 3, min.insync.replicas 2."""
    name = "fjord"

    def __init__(self, fjord_bin, work, name="fjord-rf3"):
        self.bin = fjord_bin
        self.dir = os.path.join(work, name)
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

    def pids(self):
        return [p.pid if p.poll() is None else None for p in self.procs]

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

