"""The charts (matplotlib, PNG): Fjord/Kafka of every row, the partition-count rows as
curves, and the partition scaling curve. Written to target/bench/ and to the directory
README's benchmark section shows them from (docs/bench/, BENCH_CHARTS_DIR)."""
import os
import shutil

from common import log


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def subtitle(machine):
    load = machine.get("loadavg_at_start"), machine.get("loadavg_at_end")
    text = f"{machine.get('cores')} cores, {machine.get('date', '')}"
    if all(load):
        text += f", 1-min load {load[0][0]:.1f} at start, {load[1][0]:.1f} at end"
    return text


def ratios_chart(rows, machine, path):
    """One bar per row with both figures: Fjord/Kafka on a log scale, green where Fjord is
    better (higher for throughput, lower for latency, CPU and memory)."""
    plt = pyplot()
    rs = [r for r in rows if r.get("kafka") and r.get("fjord") is not None]
    if not rs:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(rs) + 1.5))
    names = [f"{r['name']} ({r['unit']})" for r in rs]
    vals = [r["fjord"] / r["kafka"] for r in rs]
    colors = ["#2a9d4b" if (v >= 1) == r["higher_is_better"] else "#d1495b"
              for v, r in zip(vals, rs)]
    y = list(range(len(rs)))[::-1]
    ax.barh(y, vals, color=colors)
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:.2f}x", va="center", fontsize=6)
    ax.set_xlabel("Fjord / Kafka (log scale; green: Fjord better)")
    ax.set_title(f"Fjord / Apache Kafka, median of the rounds\n{subtitle(machine)}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def partitions_chart(rows, machine, path):
    """The rdkafka_performance rows against the partition count, both systems."""
    plt = pyplot()
    kinds = [("produce 1KB acks=1 1 broker", "produce 1 KB acks=1"),
             ("produce 1KB acks=all 1 broker", "produce 1 KB acks=all"),
             ("consume 1KB from page cache", "consume 1 KB")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    drawn = False
    for ax, (prefix, title) in zip(axes, kinds):
        for system, style in (("kafka", "o--"), ("fjord", "s-")):
            pts = []
            for parts in (1, 3, 12):
                name = f"{prefix}, {parts} partitions [rdkafka_performance]"
                r = next((r for r in rows if r["name"] == name and r["unit"] == "MB/s"), None)
                if r and r.get(system) is not None:
                    pts.append((parts, r[system]))
            if pts:
                drawn = True
                ax.plot(*zip(*pts), style, label="Apache Kafka" if system == "kafka"
                        else "Fjord")
        ax.set_xscale("log")
        ax.set_xticks([1, 3, 12])
        ax.set_xticklabels(["1", "3", "12"])
        ax.set_xlabel("partitions per topic")
        ax.set_ylabel("MB/s")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"One broker, rdkafka_performance, by partition count\n{subtitle(machine)}",
                 fontsize=9)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def scaling_chart(rows, machine, path):
    """Each figure of the scaling curve against the partition count, both systems."""
    plt = pyplot()
    figures = []
    for r in rows:
        if (r["figure"], r["unit"]) not in figures:
            figures.append((r["figure"], r["unit"]))
    cols = 4
    nrows = (len(figures) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(14, 3.4 * nrows), squeeze=False)
    drawn = False
    for ax, (figure, unit) in zip([a for row in axes for a in row], figures):
        for system, style in (("kafka", "o--"), ("fjord", "s-")):
            pts = [(r["partitions"], r[system]) for r in rows
                   if r["figure"] == figure and r.get(system) is not None]
            failed = [r["partitions"] for r in rows
                      if r["figure"] == figure and r.get(f"{system}_error")]
            label = "Apache Kafka" if system == "kafka" else "Fjord"
            if pts:
                drawn = True
                ax.plot(*zip(*pts), style, label=label)
            for n in failed:
                ax.axvline(n, color="#d1495b" if system == "fjord" else "#888",
                           linestyle=":", linewidth=1)
                ax.text(n, 0, f" {label} failed", rotation=90, fontsize=6, va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("partitions (3 brokers, RF 3)")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.set_title(figure, fontsize=8)
        ax.legend(fontsize=7)
    for ax in [a for row in axes for a in row][len(figures):]:
        ax.axis("off")
    fig.suptitle(f"Partition scaling\n{subtitle(machine)}", fontsize=9)
    fig.tight_layout()
    if drawn:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def draw(rows, scale_rows, machine, out_dir, charts_dir):
    """Draws what the run measured; returns the paths written. A chart is a figure, never
    a failure: without matplotlib the run still gives its table."""
    written = []
    jobs = [("bench-ratios.png", ratios_chart, rows),
            ("bench-partitions.png", partitions_chart, rows),
            ("bench-scaling.png", scaling_chart, scale_rows)]
    for name, fn, data in jobs:
        if not data:
            continue
        path = os.path.join(out_dir, name)
        try:
            if not fn(data, machine, path):
                continue
        except Exception as e:  # a chart, never a failure of the run
            log(f"chart {name} not drawn: {e!r}")
            continue
        written.append(path)
        if charts_dir:
            os.makedirs(charts_dir, exist_ok=True)
            shutil.copy(path, os.path.join(charts_dir, name))
            written.append(os.path.join(charts_dir, name))
    return written
