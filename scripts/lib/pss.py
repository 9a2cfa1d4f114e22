"""Proportional set size of a training job's ranks.

Runs a command (nntrain itself, or mpirun starting it), waits until the
run directory's metrics.jsonl holds its first epoch, and samples the
proportional set size (Pss in /proc/PID/smaps_rollup) of every process
named nntrain that it started every 0.2 s until the command ends; prints one JSON line:
the largest total over the samples, and each rank's share in that sample.

    python3 scripts/lib/pss.py RUN_DIR -- COMMAND...
"""
import json
import os
import subprocess
import sys
import time


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def trainers(root):
    """The processes named nntrain that descend from `root`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "nntrain":
                    continue
        except OSError:
            continue
        pid = int(entry)
        while pid > 1 and pid != root:
            pid = parent(pid)
        if pid == root:
            found.append(int(entry))
    return found


def main():
    run_dir, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    best = (0, [])
    while process.poll() is None:
        time.sleep(0.2)
        if not os.path.exists(metrics) or os.path.getsize(metrics) == 0:
            continue
        shares = [k for k in (pss_kib(p) for p in trainers(process.pid)) if k is not None]
        if sum(shares) > best[0]:
            best = (sum(shares), sorted(shares))
    if process.returncode != 0:
        sys.exit(f"pss.py: {' '.join(command)} exited with {process.returncode}")
    print(json.dumps({"total_mb": round(best[0] / 1024, 1), "ranks_mb": [round(k / 1024, 1) for k in best[1]]}))


main()
