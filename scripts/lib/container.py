"""Runs nntrain's image with podman the ways deploy/ describes; scripts/container
builds the image and calls this.

    container.py --image IMAGE --epochs N --work DIR

1. deploy/README.md's `podman run ... mpirun -n 2` line: two ranks inside one
   container (the reference model).
2. deploy/kubernetes/mpijob.yaml as the MPI Operator runs it: workers with the
   manifest's command, environment, limits and volumes on a private network,
   an ssh key pair mounted at sshAuthMountPath, the hostfile and Open MPI
   settings the operator gives the launcher. Mid-run, `podman stop` (SIGTERM
   to the first process, as on pod deletion) on the launcher alone, then on
   one worker alone, then on all three, each time after the restarted job
   has resumed; started once more, it finishes with the reference's model
   bit for bit.
3. The `mpirun --hostfile deploy/hostfile.example` line of deploy/README.md,
   run from the launcher with the workers also named as the hostfile names
   them, each pinned to a core of its own as a host of its own would be.
Every failed check ends the run with one line and exit status 1.
"""

import argparse
import contextlib
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import yaml

MPIUSER = 1000  # the image's user (deploy/Containerfile)
MANIFEST = "deploy/kubernetes/mpijob.yaml"


def fail(message):
    print(f"scripts/container: FAILED: {message}", flush=True)
    sys.exit(1)


def say(message):
    print(message, flush=True)


def podman(*args, check=True, timeout=900):
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        fail(f"podman {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def owned_dir(path):
    """A directory the image's user can write, as a volume would be."""
    os.makedirs(path, exist_ok=True)
    os.chown(path, MPIUSER, MPIUSER)
    return path


def running(name):
    return podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"


def exit_code(name):
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())


def wait_exit(name, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not running(name):
            return exit_code(name)
        time.sleep(0.5)
    fail(f"{name} still running after {timeout} s; its log ends: {logs(name)[-800:]}")


def logs(name):
    r = podman("logs", name, check=False)
    return r.stdout + r.stderr


def read_json(path):
    with open(path) as f:
        return json.load(f)


def epochs_done(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def checksum(output, ranks):
    m = re.search(rf"CRC-32C ([0-9a-f]{{8}}), identical on all {ranks} ranks", output)
    return m.group(1) if m else None


def quantity(value):
    """A Kubernetes memory quantity as podman's --memory takes it."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(value))
    if not m:
        fail(f"{MANIFEST}: memory limit {value} is not one this test converts")
    return m.group(1) + {"Ki": "k", "Mi": "m", "Gi": "g", None: "b"}[m.group(2)]


class Cluster:
    """The MPIJob's pods as podman containers."""

    def __init__(self, image, work, epochs):
        self.image, self.work, self.epochs = image, work, epochs
        with open(MANIFEST) as f:
            self.job = yaml.safe_load(f)
        spec = self.job["spec"]
        self.name = self.job["metadata"]["name"]
        self.slots = spec.get("slotsPerWorker", 1)
        self.ssh_path = spec["sshAuthMountPath"]
        self.specs = spec["mpiReplicaSpecs"]
        self.workers = self.specs["Worker"].get("replicas", 1)
        self.network = f"{self.name}-net"
        self.runs = owned_dir(os.path.join(work, "runs"))
        self.keys = self.make_keys()
        self.hostfile = os.path.join(work, "hostfile")
        with open(self.hostfile, "w") as f:
            for i in range(self.workers):
                f.write(f"{self.worker_name(i)} slots={self.slots}\n")

    def worker_name(self, i):
        return f"{self.name}-worker-{i}"

    def launcher_name(self):
        return f"{self.name}-launcher"

    def make_keys(self):
        """The key pair the operator keeps in a Secret and mounts read-only,
        as it makes it: an ECDSA P-521 key in PEM as id_rsa (also sshd's host
        key), id_rsa.pub, authorized_keys; files of root's, mode 0644."""
        keys = os.path.join(self.work, "ssh")
        os.makedirs(keys)
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-m", "PEM", "-N", "",
                        "-C", "nntrain-test", "-f", os.path.join(keys, "id_rsa")], check=True)
        shutil.copy(os.path.join(keys, "id_rsa.pub"), os.path.join(keys, "authorized_keys"))
        for f in os.listdir(keys):
            os.chmod(os.path.join(keys, f), 0o644)
        return keys

    def run_args(self, role, name, extra_env=None, extra_mounts=(), aliases=(), cpu=None):
        """podman run options for one pod of the manifest, as the kubelet would
        start it: command, args, env, limits, volumes, grace period."""
        pod = self.specs[role]["template"]["spec"]
        c = pod["containers"][0]
        claims = {v["name"]: v for v in pod.get("volumes", [])}
        args = ["--detach", "--name", name, "--hostname", name, "--network", self.network,
                "--stop-timeout", str(pod.get("terminationGracePeriodSeconds", 30)),
                "--volume", f"{self.keys}:{self.ssh_path}:ro"]
        for alias in aliases:
            args += ["--network-alias", alias]
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        env.update(extra_env or {})
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for m in c.get("volumeMounts", []):
            if "persistentVolumeClaim" not in claims[m["name"]]:
                fail(f"{MANIFEST}: volume {m['name']} is not a claim this test can stand in for")
            args += ["--volume", f"{self.runs}:{m['mountPath']}"]
        for host, inside in extra_mounts:
            args += ["--volume", f"{host}:{inside}"]
        limits = c.get("resources", {}).get("limits", {})
        if cpu is not None:
            # A host of its own: this container's ranks see one core.
            args += ["--cpuset-cpus", str(cpu)]
        elif "cpu" in limits:
            args += ["--cpus", str(limits["cpu"])]
        if "memory" in limits:
            args += ["--memory", quantity(limits["memory"])]
        command = c.get("command")
        if command:
            args += ["--entrypoint", json.dumps(command[:1])]
        return args + [self.image] + (command[1:] if command else []) + list(c.get("args", []))

    def start_workers(self, extra_mounts=(), pin=False, only=None):
        for i in (range(self.workers) if only is None else only):
            # The second name is the one deploy/hostfile.example gives.
            podman("run", *self.run_args("Worker", self.worker_name(i), extra_mounts=extra_mounts,
                                         aliases=[f"node{i + 1:02d}"],
                                         cpu=i % os.cpu_count() if pin else None))
        # As launcherCreationPolicy WaitForWorkersReady does: the readiness
        # probe is sshd accepting connections.
        deadline = time.time() + 60
        for i in range(self.workers):
            while podman("exec", self.worker_name(i), "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2222",
                         check=False).returncode != 0:
                if time.time() > deadline:
                    fail(f"sshd on {self.worker_name(i)} does not accept connections: {logs(self.worker_name(i))[-500:]}")
                time.sleep(0.3)

    # The environment the operator gives an Open MPI launcher.
    OPERATOR_ENV = {
        "OMPI_MCA_orte_default_hostfile": "/etc/mpi/hostfile",
        "OMPI_MCA_plm_rsh_args": "-o ConnectionAttempts=10",
        "OMPI_MCA_orte_keep_fqdn_hostnames": "true",
    }

    # The test's changes to the manifest: fewer epochs, and one BLAS thread per
    # rank, as the two workers share this machine's cores. (A rank alone in a
    # container that sees 2 cores would take 2 threads, so the count in
    # run.json tells whether -x brought the launcher's value to the ranks.
    # One thread is also what the reference run uses, which keeps the models
    # comparable bit for bit.)
    BLAS_THREADS = "1"

    def start_launcher(self):
        env = dict(self.OPERATOR_ENV, OPENBLAS_NUM_THREADS=self.BLAS_THREADS)
        args = self.run_args("Launcher", self.launcher_name(), extra_env=env,
                             extra_mounts=[(self.hostfile, "/etc/mpi/hostfile:ro")])
        podman("run", *args, "--epochs", str(self.epochs))

    def remove(self):
        names = [self.launcher_name()] + [self.worker_name(i) for i in range(self.workers)]
        podman("rm", "--force", "--time", "0", *names, check=False)

    @contextlib.contextmanager
    def network_up(self):
        """The private network, made anew (an interrupted earlier run may
        have left it and its containers); everything removed afterwards."""
        def clear():
            self.remove()
            podman("network", "rm", "--force", self.network, check=False)
        clear()
        podman("network", "create", self.network)
        try:
            yield
        finally:
            clear()


def readme_line(prefix):
    """The command of deploy/README.md that starts with prefix."""
    with open("deploy/README.md") as f:
        line = next((l.strip() for l in f if l.startswith(prefix)), None)
    if not line:
        fail(f"deploy/README.md has no `{prefix}` line")
    return line


def reference(image, work, epochs):
    """deploy/README.md's `podman run ... mpirun -n 2` line, with this test's
    image, directory and epochs: the model the MPIJob must reproduce."""
    line = readme_line("podman run --rm -v ./runs:/runs --entrypoint mpirun nntrain ")
    say(f"== deploy/README.md: {line}")
    words = line.split()
    words[words.index("./runs:/runs")] = f"{owned_dir(os.path.join(work, 'single'))}:/runs"
    words[words.index("mpirun") + 1] = image
    run_dir = words[words.index("--run-dir") + 1]
    # One BLAS thread per rank, as in the MPIJob run, so that both models may
    # be compared bit for bit whatever the core count.
    words[2:2] = ["--env", "OPENBLAS_NUM_THREADS=1"]
    start = time.time()
    r = podman(*words[1:], "--epochs", str(epochs), check=False)
    output = r.stdout + r.stderr
    if r.returncode != 0:
        fail(f"mpirun -n 2 in a container exited {r.returncode}: {output[-800:]}")
    crc = checksum(output, 2)
    if not crc:
        fail(f"no checksum agreed by both ranks in the output: {output[-800:]}")
    model = os.path.join(work, "single", run_dir.removeprefix("/runs/"), "model.safetensors")
    if not os.path.isfile(model):
        fail("the container's run wrote no model.safetensors")
    accuracy = re.search(r"test.*?accuracy[^0-9]*([0-9.]+)", output)
    say(f"exit 0 in {time.time() - start:.0f} s; CRC-32C {crc} on both ranks"
        + (f"; test accuracy {accuracy.group(1)}" if accuracy else ""))
    return model


def stop_mid_run(c, run_dir, names, after_epochs, resumed):
    """Waits until after_epochs epochs are done, then stops the named
    containers at once with SIGTERM to their first process (pod deletion);
    checks the checkpoint, the exit codes and, for a restarted launcher, that
    it resumed."""
    start = time.time()
    while epochs_done(run_dir) < after_epochs:
        if time.time() - start > 300:
            fail(f"epoch {after_epochs} not done in 300 s; the launcher's log ends: {logs(c.launcher_name())[-800:]}")
        if not running(c.launcher_name()):
            fail(f"the launcher ended before epoch {after_epochs}: {logs(c.launcher_name())[-800:]}")
        time.sleep(0.2)
    say(f"epoch {after_epochs} done after {time.time() - start:.1f} s; podman stop {' '.join(names)}")
    stop_start = time.time()
    stoppers = [threading.Thread(target=podman, args=("stop", n), kwargs={"check": False}) for n in names]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    stopped_in = time.time() - stop_start
    # A worker that was not stopped has its container still up.
    code = wait_exit(c.launcher_name(), 150)
    say(f"stopped in {stopped_in:.1f} s; launcher exit {code}"
        + "".join(f", {n} exit {exit_code(n)}" for n in names if n != c.launcher_name()))
    launcher_log = logs(c.launcher_name())
    if code != 75:
        fail(f"the launcher exited {code}, not 75 (stopped, to be started again): {launcher_log[-800:]}")
    if resumed and "resuming" not in launcher_log:
        fail("the restarted launcher did not resume")
    for n in names:
        if n != c.launcher_name() and exit_code(n) != 0:
            fail(f"{n} exited {exit_code(n)}: {logs(n)[-500:]}")
    record = read_json(os.path.join(run_dir, "run.json"))
    if record.get("exit_reason") != "stopped":
        fail(f"run.json says {record.get('exit_reason')!r}, not 'stopped'")
    latest = os.path.join(run_dir, "checkpoints", "latest")
    if not os.path.exists(latest):
        fail("no checkpoint after the stop")
    with open(latest) as f:
        say(f"checkpoint {f.read().strip()} written; run.json: stopped")
    return record


def mpijob(cluster, reference_model):
    c = cluster
    run_dir = os.path.join(c.runs, "fashion-mnist")
    say(f"== {MANIFEST}: {c.workers} workers and a launcher on the podman network {c.network}")
    with c.network_up():
        c.start_workers()
        c.start_launcher()
        # The launcher's pod alone deleted: SIGUSR1 through mpirun stops the ranks.
        record = stop_mid_run(c, run_dir, [c.launcher_name()], 1, resumed=False)
        hosts = record.get("hosts", [])
        if sorted(hosts) != sorted(c.worker_name(i) for i in range(c.workers) for _ in range(c.slots)):
            fail(f"the ranks ran on {hosts}, not one per worker")
        wanted = c.BLAS_THREADS
        if str(record.get("blas_threads")) != wanted:
            fail(f"rank 0 used {record.get('blas_threads')} BLAS threads: the launcher's "
                 f"OPENBLAS_NUM_THREADS={wanted} did not reach it through mpirun -x")
        say(f"ranks on {', '.join(hosts)}; OPENBLAS_NUM_THREADS={wanted} reached rank 0 through mpirun -x")

        # The launcher's restart policy starts it again: it resumes.
        podman("rm", c.launcher_name())
        c.start_launcher()
        # One worker's pod deleted (its node drained): its nntrain-pod stops
        # the rank there, and the others stop with it.
        last = c.worker_name(c.workers - 1)
        stop_mid_run(c, run_dir, [last], 2, resumed=True)
        # The operator makes the missing worker again; the launcher restarts.
        podman("rm", c.launcher_name(), last)
        c.start_workers(only=[c.workers - 1])
        c.start_launcher()
        # Then the whole job deleted: every pod gets SIGTERM at once.
        names = [c.launcher_name()] + [c.worker_name(i) for i in range(c.workers)]
        stop_mid_run(c, run_dir, names, 3, resumed=True)

        # Applied again: workers and launcher come back, and the run finishes.
        c.remove()
        restart = time.time()
        c.start_workers()
        c.start_launcher()
        code = wait_exit(c.launcher_name(), 600)
        launcher_log = logs(c.launcher_name())
        if code != 0:
            fail(f"the restarted launcher exited {code}: {launcher_log[-800:]}")
        if "resuming" not in launcher_log:
            fail("the restarted launcher did not resume")
        if read_json(os.path.join(run_dir, "run.json")).get("exit_reason") != "finished":
            fail("the resumed run did not finish")
        same = filecmp.cmp(reference_model, os.path.join(run_dir, "model.safetensors"), shallow=False)
        say(f"restarted job resumed and finished in {time.time() - restart:.0f} s; "
            f"model bit-identical to the uninterrupted run: {'yes' if same else 'NO'}")
        if not same:
            fail("the resumed model differs from the uninterrupted one")


def hostfile_line(cluster):
    """deploy/README.md's --hostfile command, run as written from the launcher."""
    c = cluster
    line = readme_line("mpirun --hostfile deploy/hostfile.example")
    say(f"== deploy/README.md from the launcher: {line}")
    run_dir = re.search(r"--run-dir (\S+)", line).group(1)
    shared = run_dir.split("/")[1]
    with c.network_up():
        # The shared file system of the hosts: the same directory everywhere.
        # Each worker pinned to a core of its own, as separate hosts have.
        c.start_workers(extra_mounts=[(c.runs, f"/{shared}")], pin=True)
        start = time.time()
        r = podman("run", "--rm", "--network", c.network, "--volume", f"{c.keys}:{c.ssh_path}:ro",
                   "--volume", f"{c.runs}:/{shared}", "--volume", f"{os.path.abspath('deploy')}:/repo/deploy:ro",
                   "--workdir", "/repo", "--entrypoint", '["bash", "-c"]', c.image, line, check=False)
        output = r.stdout + r.stderr
        if r.returncode != 0:
            fail(f"the hostfile line exited {r.returncode}: {output[-800:]}")
        record = read_json(os.path.join(c.runs, run_dir.split("/", 2)[2], "run.json"))
        hosts = record.get("hosts", [])
        per_host = {h: hosts.count(h) for h in hosts}
        if len(per_host) < 2:
            fail(f"all ranks ran on one host: {hosts}")
        crc = checksum(output, len(hosts))
        if not crc:
            fail(f"no checksum agreed by all ranks: {output[-600:]}")
        say(f"exit 0 in {time.time() - start:.0f} s; {len(hosts)} ranks over TCP: "
            + ", ".join(f"{n} on {h}" for h, n in per_host.items()) + f"; CRC-32C {crc} on all")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--work", required=True)
    a = p.parse_args()
    if a.epochs < 5:
        fail("--epochs must be at least 5: the MPIJob is stopped after epochs 1, 2 and 3")
    model = reference(a.image, a.work, a.epochs)
    cluster = Cluster(a.image, a.work, a.epochs)
    mpijob(cluster, model)
    hostfile_line(cluster)
    say("scripts/container: all checks passed")


if __name__ == "__main__":
    main()
