"""A 3-broker cluster on loopback that a test starts, owns, and may kill a broker of: Fjord
brokers from FJORD_BIN (planned as `fjord dev` plans them, each its own process), or Apache
Kafka nodes through e2e/apache-kafka.sh. Fault tests cannot share a cluster with others."""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
APACHE_KAFKA = HERE.parent / "apache-kafka.sh"
HOST = "127.0.0.1"
BROKERS = 3
# A broker's start-up, and its SIGTERM → exit (the broker's own grace is 10 s).
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# A silent broker is fenced in about two seconds, as in the Rust cluster fault suite.
FJORD_FAST_FENCING = [
    "--broker-heartbeat-interval-ms=200",
    "--broker-session-timeout-ms=2000",
    "--replica-lag-time-max-ms=2000",
]


def _log_tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"({path}: {e})"
    return "\n".join(text[-lines:])


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers signal 0; reaping happens in the owner's wait().
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class FjordCluster:
    """Broker i (1..3): Kafka on BASE+i-1, internal listener on BASE+10+i-1, HTTP on
    BASE+20+i-1, data in ROOT/node-i; the three are the metadata quorum's voters."""

    def __init__(self, binary, root, base_port):
        self.binary = str(binary)
        self.root = Path(root)
        self.base = base_port
        self.procs = {}

    def kafka_port(self, node):
        return self.base + node - 1

    def _internal_port(self, node):
        return self.base + 10 + node - 1

    def _http_port(self, node):
        return self.base + 20 + node - 1

    def bootstrap(self):
        return ",".join(f"{HOST}:{self.kafka_port(n)}" for n in range(1, BROKERS + 1))

    def log_path(self, node):
        return self.root / f"node-{node}.log"

    def _argv(self, node):
        voters = ",".join(f"{n}@{HOST}:{self._internal_port(n)}" for n in range(1, BROKERS + 1))
        return [self.binary, f"--node-id={node}", f"--data-dir={self.root / f'node-{node}'}",
                f"--kafka-listen={HOST}:{self.kafka_port(node)}",
                f"--internal-listen={HOST}:{self._internal_port(node)}",
                f"--http-listen={HOST}:{self._http_port(node)}", f"--voters={voters}",
                f"--default-replication-factor={BROKERS}", "--min-insync-replicas=2",
                *FJORD_FAST_FENCING]

    def _spawn(self, node):
        (self.root / f"node-{node}").mkdir(parents=True, exist_ok=True)
        with open(self.log_path(node), "ab") as log:
            self.procs[node] = subprocess.Popen(self._argv(node), stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def _ready(self, node):
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self._http_port(node)}/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _wait_ready(self, nodes):
        end = time.monotonic() + START_TIMEOUT_S
        waiting = set(nodes)
        while waiting:
            for n in list(waiting):
                if self.procs[n].poll() is not None:
                    raise RuntimeError(f"fjord broker {n} exited with {self.procs[n].returncode} while starting:\n"
                                       + _log_tail(self.log_path(n)))
                if self._ready(n):
                    waiting.discard(n)
            if waiting and time.monotonic() > end:
                raise RuntimeError(f"fjord brokers {sorted(waiting)} not ready within {START_TIMEOUT_S}s")
            time.sleep(0.2)  # poll interval of /ready, not a synchronisation

    def start(self):
        for n in range(1, BROKERS + 1):
            self._spawn(n)
        self._wait_ready(range(1, BROKERS + 1))

    def kill(self, node):
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait(timeout=STOP_TIMEOUT_S)

    def restart(self, node):
        self._spawn(node)
        self._wait_ready([node])

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in self.procs.items():
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log_tails(self):
        return "\n".join(f"---- fjord broker {n} ({self.log_path(n)}) ----\n{_log_tail(self.log_path(n))}"
                         for n in range(1, BROKERS + 1))


class KafkaCluster:
    """Apache Kafka nodes 1..3 (combined broker and controller) from e2e/apache-kafka.sh:
    clients on BASE+i-1, controllers on BASE+3+i-1, node i in ROOT/node-i."""

    def __init__(self, root, base_port):
        self.root = Path(root)
        self.base = base_port

    def kafka_port(self, node):
        return self.base + node - 1

    def bootstrap(self):
        return ",".join(f"{HOST}:{self.kafka_port(n)}" for n in range(1, BROKERS + 1))

    def _script(self, *args):
        r = subprocess.run([str(APACHE_KAFKA), *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=START_TIMEOUT_S + 60)
        if r.returncode != 0:
            raise RuntimeError(f"apache-kafka.sh {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")

    def start(self):
        self._script("start-cluster", str(self.root), str(self.base), str(BROKERS))

    def kill(self, node):
        pid = int((self.root / f"node-{node}" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid):
            if time.monotonic() > end:
                raise RuntimeError(f"Kafka node {node} (pid {pid}) still alive after SIGKILL")
            time.sleep(0.1)  # poll interval, not a synchronisation

    def restart(self, node):
        self._script("start-node", str(self.root), str(node))

    def stop(self):
        self._script("stop-cluster", str(self.root))

    def log_tails(self):
        return "\n".join(f"---- Kafka node {n} ----\n{_log_tail(self.root / f'node-{n}' / 'server.log')}"
                         for n in range(1, BROKERS + 1))


def owned_cluster(root):
    """The cluster TXN_BROKER names: fjord (default; FJORD_BIN is the broker binary) or
    kafka. Ports from TXN_BASE_PORT (default 17000 for Fjord, 17050 for Kafka), below the
    kernel's ephemeral range (32768-60999), where a client connection could hold one."""
    broker = os.environ.get("TXN_BROKER", "fjord")
    if broker == "fjord":
        binary = os.environ.get("FJORD_BIN", "").strip()
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError(f"FJORD_BIN must name the fjord binary (got {binary!r}); "
                               "or TXN_BROKER=kafka for Apache Kafka")
        return FjordCluster(binary, root, int(os.environ.get("TXN_BASE_PORT", "17000")))
    if broker == "kafka":
        return KafkaCluster(root, int(os.environ.get("TXN_BASE_PORT", "17050")))
    raise RuntimeError(f"TXN_BROKER must be fjord or kafka, not {broker!r}")
