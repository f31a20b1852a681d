"""The security setup: one broker of each system with an SSL and a SASL_SSL listener
(SCRAM-SHA-512) beside its PLAINTEXT one, driven over each by the same clients as the
plaintext rows: fjord-bench with librdkafka's -X security settings, and Kafka's
ProducerPerformance / ConsumerPerformance with a client config file.

Both brokers get the same PEM certificate (e2e/tls/certs.sh, ECDSA P-256), no client
certificates (ssl.client.auth=none) and no authorizer, and both clients their TLS
defaults; the TLS version and cipher each broker negotiates with OpenSSL's defaults (the
library librdkafka uses) are recorded with the figures. Kafka encrypts in the JVM (JSSE),
so it copies every fetched byte through user space; Fjord uses kernel TLS where the
kernel offers it and encrypts in user space (rustls) where it does not, which the
machine's `kernel_tls` figure tells.
"""
import os
import shutil
import socket
import ssl
import subprocess

from brokers import FJORD_PORT, KAFKA_PORT, Fjord, Kafka
from common import Steps, fail, log, measured, setup_failed

PROTOCOLS = ("SSL", "SASL_SSL")
SCRAM_MECHANISM = "SCRAM-SHA-512"
# A benchmark's throwaway credential; 4096 iterations is Kafka's default for
# `kafka-storage format --add-scram` and Fjord's minimum.
SCRAM_USER, SCRAM_PASSWORD, SCRAM_ITERATIONS = "bench", "bench-secret", 4096
SCRAM_CREDENTIAL = (f"{SCRAM_MECHANISM}=[name={SCRAM_USER},password={SCRAM_PASSWORD},"
                    f"iterations={SCRAM_ITERATIONS}]")

# Beside each system's PLAINTEXT port: Kafka's controller listener is KAFKA_PORT + 1.
KAFKA_TLS_PORTS = {"SSL": KAFKA_PORT + 2, "SASL_SSL": KAFKA_PORT + 3}
FJORD_TLS_PORTS = {"SSL": FJORD_PORT + 1, "SASL_SSL": FJORD_PORT + 2}
PORTS = (*KAFKA_TLS_PORTS.values(), *FJORD_TLS_PORTS.values())


def kernel_tls():
    """Whether this kernel offers TLS as a TCP upper-layer protocol (CONFIG_TLS): listed
    as loaded, or present as a module that the first setsockopt(TCP_ULP) would load."""
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            if "tls" in f.read().split():
                return True
    except OSError:
        pass
    release = os.uname().release
    return any(os.path.exists(f"/lib/modules/{release}/kernel/net/tls/tls.ko{ext}")
               for ext in ("", ".xz", ".zst", ".gz"))


class Certs:
    """The certificates of e2e/tls/certs.sh, plus the one-file keystore (key, then chain)
    Kafka's ssl.keystore.type=PEM reads (KIP-651)."""

    def __init__(self, root, work):
        self.dir = os.path.join(work, "tls")
        shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run(["bash", os.path.join(root, "e2e", "tls", "certs.sh"), self.dir],
                       check=True, capture_output=True, timeout=60)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "broker.pem")
        self.key = os.path.join(self.dir, "broker.key")
        self.keystore = os.path.join(self.dir, "broker-keystore.pem")
        with open(self.keystore, "w") as out:
            for part in (self.key, self.cert):
                with open(part) as f:
                    out.write(f.read())

    def librdkafka(self, protocol):
        """fjord-bench's -X settings for a client over `protocol`."""
        props = [f"security.protocol={protocol.lower()}", f"ssl.ca.location={self.ca}"]
        if protocol.startswith("SASL_"):
            props += [f"sasl.mechanisms={SCRAM_MECHANISM}", f"sasl.username={SCRAM_USER}",
                      f"sasl.password={SCRAM_PASSWORD}"]
        return [a for p in props for a in ("-X", p)]

    def java_config(self, protocol):
        """A Java client properties file for `protocol` (--command-config)."""
        path = os.path.join(self.dir, f"client-{protocol.lower()}.properties")
        lines = [f"security.protocol={protocol}", "ssl.truststore.type=PEM",
                 f"ssl.truststore.location={self.ca}"]
        if protocol.startswith("SASL_"):
            lines += [f"sasl.mechanism={SCRAM_MECHANISM}",
                      "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule"
                      f' required username="{SCRAM_USER}" password="{SCRAM_PASSWORD}";']
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


def negotiated(port, ca):
    """The TLS version and cipher suite a listener agrees with OpenSSL's default client
    settings, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; None if the handshake fails."""
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return f"{t.version()} {t.cipher()[0]}"
    except (OSError, ssl.SSLError) as e:
        fail(f"TLS handshake with 127.0.0.1:{port}: {e}")
        return None


class SecureKafka(Kafka):
    """Kafka with SSL and SASL_SSL listeners beside PLAINTEXT (its inter-broker listener)
    and the SCRAM user created when its storage is formatted, as KRaft requires."""

    def __init__(self, root, work, certs):
        super().__init__(root, work, "security")
        self.certs = certs
        self.tls_ports = KAFKA_TLS_PORTS
        os.makedirs(self.dir, exist_ok=True)
        self.extra = os.path.join(self.dir, "security.properties")
        listeners = [f"{p}://127.0.0.1:{port}" for p, port in self.tls_ports.items()]
        with open(self.extra, "w") as f:
            f.write("\n".join([
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.port + 1}," + ",".join(listeners),
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}," + ",".join(listeners),
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                "SSL:SSL,SASL_SSL:SASL_SSL",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={certs.keystore}",
                "ssl.client.auth=none",
                f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                # The broker side of SCRAM needs a login module entry for the listener,
                # with no options: credentials come from the metadata log.
                f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ]) + "\n")

    def env(self):
        return {**os.environ, "KAFKA_EXTRA_PROPERTIES": self.extra,
                "KAFKA_ADD_SCRAM": SCRAM_CREDENTIAL}

    def bootstrap_for(self, protocol):
        return f"127.0.0.1:{self.tls_ports[protocol]}"


class SecureFjord(Fjord):
    """Fjord with the same three listeners and the same SCRAM user (--scram-bootstrap)."""

    def __init__(self, fjord_bin, work, certs):
        super().__init__(fjord_bin, work, "security")
        self.certs = certs
        self.tls_ports = FJORD_TLS_PORTS

    def listener_args(self):
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"] + [
            f"{p}://127.0.0.1:{port}" for p, port in self.tls_ports.items()]
        return ["--listeners", ",".join(listeners),
                "--ssl-keystore-location", self.certs.cert,
                "--ssl-key-location", self.certs.key,
                "--ssl-client-auth", "none",
                "--sasl-enabled-mechanisms", SCRAM_MECHANISM]

    def env(self):
        # The credential through the environment, as `fjord --help` advises: flags show
        # in `ps`.
        return {**os.environ, "FJORD_SCRAM_BOOTSTRAP": SCRAM_CREDENTIAL}

    def bootstrap_for(self, protocol):
        return f"127.0.0.1:{self.tls_ports[protocol]}"


def run_security(broker, rd, java, sizes, rnd):
    """Figures for one system over SSL and over SASL_SSL in round `rnd`: 1 KB produce at
    acks=1 and consume from the page cache, with the broker's CPU across each, by
    librdkafka and (in the first `java_rounds` rounds) by Kafka's Java tools. Each figure
    is one step (Steps): a step that fails leaves its own rows empty with its error."""
    r = {"tls": {}}
    step = Steps(broker.name, "security", r)
    log(f"{broker.name} [security] round {rnd + 1}: fresh start")
    if not broker.wait_ready(broker.launch()):
        setup_failed(broker.name, "security", f"{broker.name} [security] did not start")
        return None
    pid = broker.pid()
    certs = broker.certs
    with_java = rnd < sizes["java_rounds"]
    n, n_java = sizes["n_tls1k"], sizes["n_jtls1k"]
    gb = n * 1024 / 1e9

    def per_gb(run):
        return run["broker_cpu_s"] / gb if run and "broker_cpu_s" in run else None

    for proto in PROTOCOLS:
        key = proto.lower()
        b = broker.bootstrap_for(proto)
        x = certs.librdkafka(proto)
        r["tls"][proto] = negotiated(broker.tls_ports[proto], certs.ca)
        topics = [f"{key}-warm", f"{key}-p1k"] + ([f"{key}-j1k"] if with_java else [])
        for t in topics:
            if not rd.create_topic(b, t, [], extra=x):
                fail(f"{broker.name}: could not create topic {t} over {proto}")
        # The same warm-up as the plaintext rows, over this listener: a JVM's first TLS
        # records run interpreted.
        log(f"{broker.name} [{proto}]: warm-up, {sizes['n_warm']} x 1KB produced and read")
        if rd.produce(b, f"{key}-warm", sizes["n_warm"], 1024, 1, extra=x):
            rd.consume(b, f"{key}-warm", sizes["n_warm"], extra=x)

        log(f"{broker.name} [{proto}]: produce {n} x 1KB acks=1 (librdkafka)")
        p = step(f"{key}_p1k",
                 lambda: measured(pid, lambda: rd.produce(b, f"{key}-p1k", n, 1024, 1, extra=x)))
        step(f"{key}_p1k_cpu_s_per_gb", lambda: per_gb(p))
        log(f"{broker.name} [{proto}]: consume {n} x 1KB (librdkafka)")
        c = step(f"{key}_consume",
                 lambda: measured(pid, lambda: rd.consume(b, f"{key}-p1k", n, extra=x))
                 if p else None)
        step(f"{key}_consume_cpu_s_per_gb", lambda: per_gb(c))
        if with_java:
            cfg = certs.java_config(proto)
            log(f"{broker.name} [{proto}]: produce and consume {n_java} x 1KB (Java)")
            jp = step(f"j{key}_p1k",
                      lambda: java.produce(b, f"{key}-j1k", n_java, 1024, 1, config=cfg))
            step(f"j{key}_consume",
                 lambda: java.consume(b, f"{key}-j1k", n_java, config=cfg) if jp else None)
    broker.stop()
    return r


def rows():
    """The security rows, in table.ROWS's form."""
    out = []
    for proto in PROTOCOLS:
        k = proto.lower()
        out += [
            (f"produce 1KB acks=1 1 broker {proto}", "MB/s", "security", (f"{k}_p1k", "MBps"),
             True, "librdkafka"),
            (f"consume 1KB from page cache {proto}", "MB/s", "security",
             (f"{k}_consume", "MBps"), True, "librdkafka"),
            (f"broker CPU seconds per GB, produce 1KB {proto}", "s/GB", "security",
             (f"{k}_p1k_cpu_s_per_gb",), False, "librdkafka"),
            (f"broker CPU seconds per GB, consume 1KB {proto}", "s/GB", "security",
             (f"{k}_consume_cpu_s_per_gb",), False, "librdkafka"),
        ]
    for proto in PROTOCOLS:
        k = proto.lower()
        out += [
            (f"produce 1KB acks=1 1 broker {proto} [Java]", "MB/s", "security",
             (f"j{k}_p1k", "MBps"), True, "java"),
            (f"consume 1KB from page cache {proto} [Java]", "MB/s", "security",
             (f"j{k}_consume", "fetch_MBps"), True, "java"),
        ]
    return out


def negotiated_summary(res):
    """{system: {protocol: "version cipher"}} over the rounds (every distinct value)."""
    out = {}
    for system, setups in res.items():
        seen = {}
        for r in setups.get("security", []):
            for proto, v in ((r or {}).get("tls") or {}).items():
                if v and v not in seen.setdefault(proto, []):
                    seen[proto].append(v)
        if seen:
            out[system] = {p: ", ".join(v) for p, v in seen.items()}
    return out


def print_goals(rows_out):
    """Fjord's goals beside what the rows show: over TLS, it consumes at least
    twice and produces at least 1.5 times what Kafka does."""
    by_name = {r["name"]: r for r in rows_out if r["unit"] == "MB/s"}
    lines = []
    for proto in PROTOCOLS:
        for what, name, goal in (("produce", f"produce 1KB acks=1 1 broker {proto}", 1.5),
                                 ("consume", f"consume 1KB from page cache {proto}", 2.0)):
            r = by_name.get(name)
            if r and r["kafka"] and r["fjord"] is not None:
                ratio = r["fjord"] / r["kafka"]
                lines.append(f"  {what} over {proto}: Fjord/Kafka {ratio:.2f}x (goal {goal}x: "
                             f"{'met' if ratio >= goal else 'not met'})")
    if lines:
        print("Security rows against the goals (librdkafka):")
        print("\n".join(lines))
