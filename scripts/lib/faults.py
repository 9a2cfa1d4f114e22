"""The measuring half of scripts/faults (standard library only).

  job DIR [--marker M] [--netns A,B] [--deadline S] [--linger S] -- COMMAND...
      runs COMMAND in a session of its own, writes every line of its output
      as it arrives to DIR/log ("unix-time stream text"), and when it has
      exited and every process of the job is gone (its session, every
      process whose command line holds M, every process in the namespaces),
      DIR/status.json. Past the deadline (seconds from the start), or
      --linger seconds after COMMAND exited, what is left is killed and named.
  pid MARKER (--rank N | --launcher | --nntrain)
      the process id of one rank (from its environment), of mpirun, or of
      any nntrain process.
  reap MARKER [--netns A,B]
      kills (SIGKILL) every process of the jobs under MARKER.
  checkpoint RUN BINARY
      whether RUN's latest checkpoint reads back: `nntrain inspect` accepts
      it and every floating-point value in it is finite.
  params FILE
      sha256 of a safetensors file's tensors (names, shapes, bytes; not its
      metadata).
  judge DIR --fault TEXT [expectations]
      one row of the table from DIR's files, with its verdict.
  table ROWS [--markdown FILE]
      the rows as an aligned table (and as markdown)."""
import argparse, hashlib, json, math, os, re, signal, struct, subprocess, sys, threading, time


# ---------------------------------------------------------------- processes

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def session(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return int(text[text.rindex(")") + 2:].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return text[text.rindex(")") + 2]
    except (OSError, ValueError):
        return None


def netns_pids(names):
    pids = set()
    for name in names:
        try:
            out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=5).stdout
            pids.update(int(p) for p in out.split())
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
    return pids


# What a job's command line can start; anything else naming the marker (a
# grep of its log, this script's own helpers) is not part of the job.
JOB_COMMANDS = {"nntrain", "mpirun", "mpiexec", "orterun", "orted", "prterun", "prted"}


def job_processes(marker=None, sid=None, netns=()):
    """Live processes of a job (zombies count as gone), never this one."""
    me = os.getpid()
    found = set(netns_pids(netns)) if netns else set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        if sid is not None and session(pid) == sid:
            found.add(pid)
        elif marker and comm(pid) in JOB_COMMANDS:
            line = cmdline(pid)
            if line and marker in line:
                found.add(pid)
    return {p for p in found if p != me and state(p) not in (None, "Z", "X")}


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run_job(a):
    os.makedirs(a.dir, exist_ok=True)
    log = open(os.path.join(a.dir, "log"), "a", buffering=1)
    lock = threading.Lock()
    netns = [n for n in (a.netns or "").split(",") if n]
    start = time.time()
    proc = subprocess.Popen(a.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)

    def pump(stream, tag):
        for raw in iter(stream.readline, b""):
            text = raw.decode(errors="replace").rstrip("\r\n")
            with lock:
                log.write(f"{time.time():.6f} {tag} {text}\n")
        stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "o"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "e"), daemon=True)]
    for r in readers:
        r.start()
    status = {"started": start, "rc": None, "exited": None, "gone": None, "killed": [], "timed_out": False}
    while True:
        now = time.time()
        if status["exited"] is None and proc.poll() is not None:
            rc = proc.returncode
            status["rc"] = 128 - rc if rc < 0 else rc
            status["exited"] = now
        left = job_processes(a.marker, proc.pid, netns)
        if status["exited"] is not None and not left:
            status["gone"] = now
            break
        late = now - start > a.deadline or (status["exited"] is not None and now - status["exited"] > a.linger)
        if late:
            status["timed_out"] = True
            status["killed"] = sorted(f"{comm(p)}[{p}]" for p in left | ({proc.pid} if proc.poll() is None else set()))
            kill_all(left | {proc.pid})
            proc.wait(timeout=10)
            if status["exited"] is None:
                status["exited"] = time.time()
                status["rc"] = 128 + signal.SIGKILL
            time.sleep(0.2)
            status["gone"] = None
            break
        time.sleep(0.02)
    for r in readers:
        r.join(timeout=5)
    with open(os.path.join(a.dir, "status.json"), "w") as f:
        json.dump(status, f)
    return 0


def find_pid(a):
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        line = cmdline(pid)
        if not line or a.marker not in line or state(pid) in (None, "Z"):
            continue
        name = comm(pid)
        if a.launcher and name in ("mpirun", "mpiexec", "orterun"):
            print(pid)
            return 0
        if a.nntrain and name == "nntrain":
            print(pid)
            return 0
        if a.rank is not None and name == "nntrain":
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if f"OMPI_COMM_WORLD_RANK={a.rank}".encode() in env:
                print(pid)
                return 0
    return 1


def reap(a):
    netns = [n for n in (a.netns or "").split(",") if n]
    for _ in range(3):
        left = job_processes(a.marker, None, netns)
        if not left:
            return 0
        print("killing leftovers: " + ", ".join(sorted(f"{comm(p)}[{p}]" for p in left)), file=sys.stderr)
        kill_all(left)
        time.sleep(0.3)
    return 0


# ---------------------------------------------------------------- files

def safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    return raw[8 + n:], tensors, header.get("__metadata__", {})


def nonfinite(data, tensors):
    """Names of the tensors holding NaN or infinities."""
    bad = []
    formats = {"F32": "f", "F64": "d"}
    for name, t in tensors.items():
        code = formats.get(t["dtype"])
        if not code:
            continue
        a, b = t["data_offsets"]
        values = struct.unpack(f"<{(b - a) // struct.calcsize(code)}{code}", data[a:b])
        if not all(math.isfinite(v) for v in values):
            bad.append(name)
    return bad


def checkpoint(a):
    directory = os.path.join(a.run, "checkpoints")
    try:
        name = open(os.path.join(directory, "latest")).read().strip()
    except OSError:
        print("none")
        return 0
    path = os.path.join(directory, name)
    inspect = subprocess.run([a.binary, "inspect", path, "--json"], capture_output=True, text=True, timeout=60)
    if inspect.returncode != 0:
        print("no: " + (inspect.stderr.strip().splitlines() or ["inspect failed"])[-1][:80])
        return 0
    try:
        data, tensors, _ = safetensors(path)
        bad = nonfinite(data, tensors)
    except (OSError, ValueError, KeyError, struct.error) as e:
        print(f"no: {e}"[:80])
        return 0
    step = json.loads(inspect.stdout).get("position", {}).get("global_step", "?")
    print(f"no: NaN/inf in {bad[0]}" if bad else f"yes (step {step})")
    return 0


def params(a):
    data, tensors, _ = safetensors(a.file)
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        x, y = t["data_offsets"]
        h.update(f"{name} {t['dtype']} {t['shape']}\n".encode())
        h.update(data[x:y])
    print(h.hexdigest())
    return 0


# ---------------------------------------------------------------- rows

LAUNCHER = re.compile(r"mpirun noticed|mpirun detected|Primary job|ORTE has lost|MPI_ABORT|exited on signal|"
                      r"An ORTE daemon|lost communication|mpirun was unable")


def read(path, default=""):
    try:
        return open(path).read().strip()
    except OSError:
        return default


def shorten(text, width=100, strip=None):
    if strip:
        text = text.replace(strip, "")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[:width - 1] + "…"


def judge(a):
    d = a.dir
    status = json.loads(read(os.path.join(d, "status.json"), "{}") or "{}")
    injected = float(read(os.path.join(d, "injected"), "0") or 0) or status.get("started", 0)
    lines = []
    for line in read(os.path.join(d, "log")).splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            lines.append((float(parts[0]), parts[1], parts[2]))
    after = [l for l in lines if l[0] >= injected]
    errors = [l for l in after if "nntrain: error:" in l[2] or (a.detect and re.search(a.detect, l[2]))]
    launcher = [l for l in after if LAUNCHER.search(l[2])]
    first = errors[0] if errors else (launcher[0] if launcher else None)
    more = ""
    if errors:
        message = errors[0][2].split("nntrain: error:", 1)[-1]
        if len(errors) > 1:
            more = f" [+{len(errors) - 1} more]"
    elif launcher:
        message = "mpirun: " + launcher[0][2]
    else:
        message = read(os.path.join(d, "message"), "no error line")
    detect = f"{first[0] - injected:.2f}" if first else "-"
    gone = f"{status['gone'] - injected:.2f}" if status.get("gone") else "-"
    rc = status.get("rc")
    ckpt = read(os.path.join(d, "checkpoint"), "n/a")
    resume = read(os.path.join(d, "resume"), "n/a")
    problems = []
    if a.exit and str(rc) not in a.exit.split("|"):
        problems.append(f"exit {rc}, expected {a.exit}")
    if a.message and not re.search(a.message, message):
        problems.append("message")
    if a.checkpoint and not ckpt.startswith(a.checkpoint):
        problems.append(f"checkpoint {ckpt}")
    if a.resume and not resume.startswith(a.resume):
        problems.append(f"resume {resume}")
    if status.get("timed_out"):
        problems.append("left running: " + " ".join(status.get("killed", [])))
    elif a.gone_within and status.get("gone") and status["gone"] - injected > a.gone_within:
        problems.append(f"gone after {gone} s > {a.gone_within:g}")
    extra = read(os.path.join(d, "problems"))
    if extra:
        problems.append(extra)
    row = {"fault": a.fault, "detect": detect, "gone": gone, "exit": str(rc), "message": shorten(message, strip=a.strip) + more,
           "checkpoint": ckpt, "resume": resume, "verdict": "ok" if not problems else "UNEXPECTED: " + "; ".join(problems)}
    with open(a.rows, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  {row['verdict']}: detect {detect} s, gone {gone} s, exit {rc}, checkpoint {ckpt}, resume {resume}")
    print(f"  message: {row['message']}")
    return 0 if not problems else 1


COLUMNS = [("fault", "fault"), ("detect", "detect s"), ("gone", "gone s"), ("exit", "exit"), ("message", "message"),
           ("checkpoint", "checkpoint valid"), ("resume", "resume"), ("verdict", "verdict")]


def table(a):
    rows = [json.loads(l) for l in open(a.rows) if l.strip()]
    widths = [max([len(title)] + [len(r[key]) for r in rows]) for key, title in COLUMNS]
    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    print(line([t for _, t in COLUMNS]))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line([r[k] for k, _ in COLUMNS]))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| " + " | ".join(t for _, t in COLUMNS) + " |\n")
            f.write("|" + "|".join(" --- " for _ in COLUMNS) + "|\n")
            for r in rows:
                f.write("| " + " | ".join(r[k].replace("|", "\\|") for k, _ in COLUMNS) + " |\n")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    j = sub.add_parser("job")
    j.add_argument("dir")
    j.add_argument("--marker")
    j.add_argument("--netns")
    j.add_argument("--deadline", type=float, default=120)
    j.add_argument("--linger", type=float, default=30)
    q = sub.add_parser("pid")
    q.add_argument("marker")
    q.add_argument("--rank", type=int)
    q.add_argument("--launcher", action="store_true")
    q.add_argument("--nntrain", action="store_true", help="any nntrain process")
    r = sub.add_parser("reap")
    r.add_argument("marker")
    r.add_argument("--netns")
    c = sub.add_parser("checkpoint")
    c.add_argument("run")
    c.add_argument("binary")
    h = sub.add_parser("params")
    h.add_argument("file")
    g = sub.add_parser("judge")
    g.add_argument("dir")
    g.add_argument("--rows", required=True)
    g.add_argument("--fault", required=True)
    g.add_argument("--exit")
    g.add_argument("--message")
    g.add_argument("--detect", help="lines that count as the job noticing the fault, besides nntrain's error lines")
    g.add_argument("--checkpoint")
    g.add_argument("--resume")
    g.add_argument("--gone-within", type=float)
    g.add_argument("--strip", help="a path prefix left out of the message")
    t = sub.add_parser("table")
    t.add_argument("rows")
    t.add_argument("--markdown")
    argv = sys.argv[1:]
    command = []
    if "--" in argv:
        argv, command = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    a = p.parse_args(argv)
    if a.what == "job":
        if not command:
            p.error("job: no command after --")
        a.command = command
        return run_job(a)
    return {"pid": find_pid, "reap": reap, "checkpoint": checkpoint, "params": params, "judge": judge,
            "table": table}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
