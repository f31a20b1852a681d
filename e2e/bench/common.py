"""What every part of the bench shares: the log, the list of failed workloads, and the
per-process figures read from /proc."""
import os
import socket
import sys
import time

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



FAILURES = []


def fail(msg):
    """A workload that failed: logged now, listed again under the table and in
    results.json, and its figure left null."""
    FAILURES.append(msg)
    log(f"FAILED: {msg}")


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


def measured(broker_pid, fn):
    """Runs one workload; adds the broker's CPU seconds across it to the result."""
    cpu0 = proc_cpu_seconds(broker_pid)
    r = fn()
    cpu1 = proc_cpu_seconds(broker_pid)
    if r is not None and cpu0 is not None and cpu1 is not None:
        r["broker_cpu_s"] = cpu1 - cpu0
    return r
