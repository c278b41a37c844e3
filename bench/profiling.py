"""Where a worker's time goes: its per-stage histogram sums, and a py-spy sample profile.

Two views: ``xrec_stage_seconds`` sums scraped from /metrics before and after a load step (the
pipeline's own stages, always available), and a py-spy recording of the worker process
(``py-spy record --format speedscope``) summarised per function and per package, when py-spy is
installed. py-spy samples only threads that are running, so a thread's share of the samples
against ``duration x rate`` says how busy it was (the event loop's thread above all).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

from streams.processes import metric_sum

_STAGE = re.compile(r'^xrec_stage_seconds_(sum|count)\{stage="([^"]+)"\} (\S+)$')


def stage_totals(metrics_text: str) -> dict[str, dict[str, float]]:
    """{stage: {"seconds": sum, "batches": count}} from a /metrics scrape."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "batches": 0.0})
    for line in metrics_text.splitlines():
        m = _STAGE.match(line)
        if m:
            kind, stage, value = m.groups()
            out[stage]["seconds" if kind == "sum" else "batches"] += float(value)
    return dict(out)


def stage_profile(before: str, after: str, wall_s: float) -> dict:
    """Per-stage seconds between two scrapes, as a share of the stages' total and of wall time."""
    a, b = stage_totals(before), stage_totals(after)
    rows = {}
    for stage, v in b.items():
        prev = a.get(stage, {"seconds": 0.0, "batches": 0.0})
        secs, batches = v["seconds"] - prev["seconds"], v["batches"] - prev["batches"]
        if batches > 0:
            rows[stage] = {"seconds": secs, "batches": int(batches)}
    total = sum(r["seconds"] for r in rows.values()) or 1e-12
    for r in rows.values():
        r["share_of_stages"] = round(r["seconds"] / total, 4)
        r["share_of_wall"] = round(r["seconds"] / wall_s, 4) if wall_s > 0 else None
        r["ms_per_batch"] = round(1000 * r["seconds"] / r["batches"], 3)
        r["seconds"] = round(r["seconds"], 4)
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["seconds"]))


def histogram_mean_ms(before: str, after: str, name: str) -> dict | None:
    """Count and mean (ms) of an unlabelled histogram's observations between two scrapes."""

    def sums(text: str) -> tuple[float, float]:
        return metric_sum(text, f"{name}_sum"), metric_sum(text, f"{name}_count")

    (s0, n0), (s1, n1) = sums(before), sums(after)
    if n1 <= n0:
        return None
    return {"count": int(n1 - n0), "mean_ms": round(1000 * (s1 - s0) / (n1 - n0), 3)}


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (OS thread name, CPU seconds so far)} of a process, native threads too."""
    out: dict[int, tuple[str, float]] = {}
    tck = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tck)
        except (OSError, IndexError, ValueError):
            continue
    return out


def thread_cpu_profile(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    wall_s: float,
    names: dict[int, str] | None = None,
) -> dict[str, float]:
    """Cores used per thread between two snapshots, grouped by Python thread name (from
    py-spy) or OS thread name with trailing numbers dropped (native pools), busiest first."""
    used: dict[str, float] = defaultdict(float)
    for tid, (comm, secs) in after.items():
        label = (names or {}).get(tid) or re.sub(r"[-_ ]?\d+$", "", comm) or comm
        used[label] += secs - before.get(tid, (comm, 0.0))[1]
    return {
        k: round(v / wall_s, 3)
        for k, v in sorted(used.items(), key=lambda kv: -kv[1])
        if v > 0.005 * wall_s and wall_s > 0
    }


def py_spy_thread_names(path: Path) -> dict[int, str]:
    """{native thread id: Python thread name} from a py-spy speedscope file."""
    doc = json.loads(Path(path).read_text())
    out = {}
    for prof in doc["profiles"]:
        m = re.match(r'Thread (\d+) "(.*)"', prof["name"])
        if m:
            out[int(m.group(1))] = f"py:{m.group(2)}"
    return out


def py_spy_binary() -> str | None:
    """Path of py-spy in the venv or on PATH, or None."""
    here = Path(__import__("sys").executable).parent / "py-spy"
    return str(here) if here.is_file() else shutil.which("py-spy")


def start_py_spy(pid: int, out: Path, duration_s: float, rate: int = 100) -> subprocess.Popen:
    """Record ``pid`` for ``duration_s`` in the background (non-blocking sampling)."""
    exe = py_spy_binary()
    if exe is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration_s))),
        "--rate", str(rate), "--format", "speedscope", "--output", str(out), "--nonblocking",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _package(file: str) -> str:
    """A coarse owner for a frame's file: site-packages top module, repo package, or stdlib."""
    parts = Path(file).parts
    if "site-packages" in parts:
        i = parts.index("site-packages")
        return parts[i + 1].removesuffix(".py") if i + 1 < len(parts) else "?"
    for pkg in ("streams", "inference", "store", "exporter", "synth", "bench"):
        if pkg in parts:
            return f"xrec:{pkg}/{parts[-1]}"
    if "python3" in "".join(parts) or file.startswith("<"):
        stem = parts[-1].removesuffix(".py") if parts else file
        return f"stdlib:{parts[-2] if stem == '__init__' and len(parts) > 1 else stem}"
    return parts[-1] if parts else file


def _is_repo(pkg: str) -> bool:
    return pkg.startswith("xrec:") and not pkg.startswith(
        ("xrec:streams/cli", "xrec:streams/worker")
    )


def summarise_speedscope(path: Path, duration_s: float, rate: int, top: int = 25) -> dict:
    """Shares of the samples: self time per function and per package, and inclusive time per
    function of our own code (streams/, inference/, store/), all threads together."""
    doc = json.loads(Path(path).read_text())
    frames = doc["shared"]["frames"]
    pkgs = [_package(f.get("file", "?")) for f in frames]
    names = [f"{f['name']} ({p})" for f, p in zip(frames, pkgs, strict=True)]
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    threads: dict[str, int] = {}
    total = 0
    for prof in doc["profiles"]:
        n = 0
        for stack, w in zip(prof["samples"], prof["weights"], strict=True):
            w = max(1, round(w * rate)) if prof.get("unit") == "seconds" else max(1, int(w))
            n += w
            if not stack:
                continue
            self_fn[names[stack[-1]]] += w
            self_pkg[pkgs[stack[-1]]] += w
            for name in {names[f] for f in stack if _is_repo(pkgs[f])}:
                incl_fn[name] += w
        threads[prof["name"]] = n
        total += n
    total = total or 1
    expected = max(1.0, duration_s * rate)

    def shares(c: Counter[str]) -> dict[str, float]:
        return {k: round(v / total, 4) for k, v in c.most_common(top)}

    return {
        "tool": "py-spy record --nonblocking (samples of running threads only)",
        "duration_s": duration_s,
        "rate_hz": rate,
        "samples": total,
        "thread_busy_fraction": {k: round(v / expected, 3) for k, v in threads.items()},
        "self_by_package": shares(self_pkg),
        "self_by_function": shares(self_fn),
        "inclusive_by_repo_function": shares(incl_fn),
    }
