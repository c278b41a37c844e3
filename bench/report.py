"""Shared bits of the benchmark reports: machine facts, process CPU, JSON and the latency plot."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that decide CPU inference speed (AVX2 / AVX-512 / VNNI)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def machine() -> dict:
    """Cores, CPU model, memory and the Python/OS versions of this machine."""
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git": git_info(),
    }


def git_info() -> dict:
    """HEAD commit and uncommitted changes to the product code (others edit it concurrently)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""

    dirty = git("status", "--porcelain", "--", "streams", "inference", "store", "exporter")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_product_changes": [line[3:] for line in dirty.splitlines()],
    }


def command_line() -> str:
    """The command that produced a result, as someone would type it again."""
    import shlex
    import sys

    if not sys.argv:
        return ""
    prog = Path(sys.argv[0]).name
    head = ["xrec"] if prog == "xrec" else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds a process has used so far (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def percentile_ms(values_s: list[float], q: float) -> float | None:
    return round(float(np.percentile(values_s, q)) * 1000, 2) if values_s else None


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def emit_probe(benchmark: str, command: str, results: dict, out: Path | None) -> int:
    """Print a probe's results with the date, machine and command; also write them to ``out``."""
    doc = {
        "benchmark": benchmark,
        "date": now_iso(),
        "machine": machine(),
        "command": command + (f" --out {out}" if out else ""),
        **results,
    }
    print(json.dumps(doc, indent=2, default=str))
    if out:
        write_json(out, doc)
    return 0


def plot_stream(rows: list[dict], passthrough_eps: float | None, path: Path) -> Path:
    """p50/p99 latency against sustained events/s, one point per offered rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("p99_ms") is not None and r.get("events_per_s", 0) > 0]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if pts:
        x = [r["events_per_s"] for r in pts]
        ax.plot(x, [r["p50_ms"] for r in pts], "-", color="tab:blue", lw=1)
        ax.plot(x, [r["p99_ms"] for r in pts], "-", color="tab:orange", lw=1)
        for r in pts:  # filled: kept up with the offered rate; hollow: fell behind
            face = None if r.get("kept_up", True) else "none"
            ax.plot(r["events_per_s"], r["p50_ms"], "o", color="tab:blue", mfc=face)
            ax.plot(r["events_per_s"], r["p99_ms"], "s", color="tab:orange", mfc=face)
            ax.annotate(
                f"{r['rate_offered']:g}/s offered",
                (r["events_per_s"], r["p99_ms"]),
                textcoords="offset points",
                xytext=(5, 3),
                fontsize=7,
            )
        ax.plot([], [], "o-", color="tab:blue", label="p50")
        ax.plot([], [], "s-", color="tab:orange", label="p99 (hollow: fell behind)")
    ax.axhline(100, color="grey", ls=":", lw=1, label="p99 goal 100 ms")
    ax.axvline(2000, color="grey", ls="--", lw=1, label="goal 2,000 ev/s")
    if passthrough_eps:
        ax.axvline(passthrough_eps, color="tab:red", ls="-.", lw=1, label="passthrough")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("sustained events/s (worker)")
    ax.set_ylabel("event produced → recommendation consumed (ms)")
    ax.set_title("xrec worker: latency vs throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
