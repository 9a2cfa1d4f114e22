"""Checks an MPIJob manifest the way the API server and the MPI Operator would
take it, plus the conventions nntrain's image relies on.

    python3 scripts/lib/mpijob.py MANIFEST SCHEMA          check one manifest
    python3 scripts/lib/mpijob.py --self-test MANIFEST SCHEMA
                                  also show that broken copies are rejected

The schema is the CRD's openAPIV3Schema. Kubernetes' strict field validation
(`kubectl apply --validate=strict`) rejects fields the schema does not name,
so every object schema with `properties` is closed here unless it says
x-kubernetes-preserve-unknown-fields; lists marked x-kubernetes-list-type
map or set must not repeat a key. The rest is JSON Schema, checked by the
jsonschema package.
"""

import copy
import re
import sys

import jsonschema
import yaml


# The ObjectMeta fields a manifest may set (the CRD leaves metadata open,
# the API server does not).
OBJECT_META = {"name", "generateName", "namespace", "labels", "annotations",
               "finalizers", "ownerReferences"}


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML with a repeated key refused, as strict validation refuses a
    duplicate field (plain YAML loading keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate field {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def strict(schema):
    """The schema with objects closed to unnamed fields, as strict validation has it."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k != "$comment"}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def list_key_problems(schema, value, path):
    """Repeated keys in lists that Kubernetes treats as maps or sets."""
    problems = []
    if isinstance(schema, dict) and isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for item in value:
                key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if key in seen:
                    problems.append(f"{path}: {'/'.join(keys)} {key} appears twice")
                seen.add(key)
        elif kind == "set":
            seen = []
            for item in value:
                if item in seen:
                    problems.append(f"{path}: {item!r} appears twice")
                seen.append(item)
        for i, item in enumerate(value):
            problems += list_key_problems(schema.get("items", {}), item, f"{path}[{i}]")
    elif isinstance(schema, dict) and isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                problems += list_key_problems(sub, item, f"{path}.{key}" if path else key)
    return problems


def schema_problems(manifest, schema):
    validator = jsonschema.Draft7Validator(strict(schema))
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"{where}: {error.message}")
    problems += list_key_problems(schema, manifest, "")
    metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
    if isinstance(metadata, dict):
        for key in sorted(set(metadata) - OBJECT_META):
            problems.append(f"metadata: unknown field {key!r}")
    return problems


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def convention_problems(job):
    """What the operator and nntrain's image need beyond the schema."""
    problems = []
    if job.get("apiVersion") != "kubeflow.org/v2beta1" or job.get("kind") != "MPIJob":
        return ["apiVersion/kind: must be kubeflow.org/v2beta1 MPIJob"]
    spec = job["spec"]
    replicas = spec.get("mpiReplicaSpecs", {})
    if set(replicas) != {"Launcher", "Worker"}:
        return problems + ["spec.mpiReplicaSpecs: needs exactly Launcher and Worker"]
    # The operator names pods NAME-worker-I, and each must be a DNS label.
    name = job.get("metadata", {}).get("name", "")
    last = f"{name}-worker-{max(replicas['Worker'].get('replicas', 1) - 1, 0)}"
    if not DNS_LABEL.match(name) or len(last) > 63:
        problems.append(f"metadata.name: {name!r} does not make DNS labels of 63 characters or fewer ({last})")
    if replicas["Launcher"].get("replicas", 1) != 1:
        problems.append("mpiReplicaSpecs.Launcher.replicas: one launcher")
    if spec.get("sshAuthMountPath") != "/home/mpiuser/.ssh":
        problems.append("spec.sshAuthMountPath: the image's sshd reads its keys from /home/mpiuser/.ssh")
    if "slotsPerWorker" not in spec:
        problems.append("spec.slotsPerWorker: say how many ranks each worker runs")
    # Unset, the launcher's Job retries 6 times and its pods restart OnFailure.
    if spec.get("runPolicy", {}).get("backoffLimit", 6) < 1:
        problems.append("spec.runPolicy.backoffLimit: at least 1, so a stopped launcher is started again and resumes")
    if replicas["Launcher"].get("restartPolicy", "OnFailure") != "OnFailure":
        problems.append("mpiReplicaSpecs.Launcher.restartPolicy: OnFailure, so exit 75 restarts the launcher")
    if spec.get("launcherCreationPolicy", "AtStartup") != "WaitForWorkersReady":
        problems.append("spec.launcherCreationPolicy: WaitForWorkersReady, so mpirun finds the workers' sshd listening")

    def container(role):
        pod = replicas[role]["template"]["spec"]
        return pod, pod["containers"][0]

    wpod, worker = container("Worker")
    lpod, launcher = container("Launcher")
    for role, pod, c in (("Worker", wpod, worker), ("Launcher", lpod, launcher)):
        where = f"mpiReplicaSpecs.{role}"
        if "limits" not in c.get("resources", {}):
            problems.append(f"{where}: the container needs resources.limits")
        if pod.get("terminationGracePeriodSeconds", 30) < 60:
            problems.append(f"{where}: terminationGracePeriodSeconds below 60 leaves little time for the checkpoint")

    if worker.get("command") != ["nntrain-pod", "worker"]:
        problems.append("mpiReplicaSpecs.Worker: command must be [nntrain-pod, worker] (sshd in the foreground, SIGTERM passed to the ranks)")
    if worker.get("readinessProbe", {}).get("tcpSocket", {}).get("port") != 2222:
        problems.append("mpiReplicaSpecs.Worker: readinessProbe tcpSocket port 2222, so the worker is ready when sshd listens")
    for e in worker.get("env") or []:
        if e["name"].startswith(RANK_ENV):
            problems.append(f"mpiReplicaSpecs.Worker env {e['name']}: ranks start in ssh sessions and never see it; set it on the launcher and pass it with mpirun -x")

    command = (launcher.get("command") or []) + (launcher.get("args") or [])
    if command[:3] != ["nntrain-pod", "launcher", "mpirun"]:
        return problems + ["mpiReplicaSpecs.Launcher: command must be nntrain-pod launcher mpirun ..."]
    try:
        nntrain = command.index("nntrain")
    except ValueError:
        return problems + ["mpiReplicaSpecs.Launcher: mpirun must start nntrain"]
    mpirun, train = command[3:nntrain], command[nntrain + 1:]

    def value(args, *names):
        for i, a in enumerate(args[:-1]):
            if a in names:
                return args[i + 1]
        return None

    n = value(mpirun, "-n", "-np", "--np", "-c")
    slots = spec.get("slotsPerWorker", 1)
    workers = replicas["Worker"].get("replicas", 1)
    if n is None or not n.isdigit() or int(n) != slots * workers:
        problems.append(f"mpirun -n {n}: must be the workers' {workers} × {slots} slots")
    if value(mpirun, "--hostfile", "-hostfile", "--machinefile") != "/etc/mpi/hostfile":
        problems.append("mpirun: --hostfile /etc/mpi/hostfile, the operator's (Open MPI 5 does not read OMPI_MCA_orte_default_hostfile)")
    if value(mpirun, "--bind-to") != "none":
        problems.append("mpirun: --bind-to none, or Open MPI binds each rank (and its OpenBLAS threads) to one core")
    exported = {mpirun[i + 1].split("=")[0] for i, a in enumerate(mpirun[:-1]) if a == "-x"}
    env = {e["name"]: e.get("value") for e in launcher.get("env") or []}
    for name in env:
        if name.startswith(RANK_ENV) and name not in exported:
            problems.append(f"mpirun: -x {name} is missing, so the ranks never get it")
    if "OPENBLAS_NUM_THREADS" not in exported:
        problems.append("mpirun: -x OPENBLAS_NUM_THREADS is missing (ranks would size their threads by the node's cores)")
    run_dir = value(train, "--run-dir")
    if run_dir is None:
        return problems + ["nntrain: give --run-dir on the shared volume"]

    def claim(pod, c):
        """The claim (and subpath) the run directory is on, if any."""
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod.get("volumes") or [] if "persistentVolumeClaim" in v}
        for m in c.get("volumeMounts") or []:
            if run_dir.startswith(m["mountPath"].rstrip("/") + "/") and m["name"] in claims:
                return claims[m["name"]], m.get("subPath", ""), m["mountPath"]
        return None

    on_worker, on_launcher = claim(wpod, worker), claim(lpod, launcher)
    if not on_worker:
        problems.append(f"mpiReplicaSpecs.Worker: {run_dir} must be on a persistent volume (rank 0 writes it)")
    if not on_launcher:
        problems.append(f"mpiReplicaSpecs.Launcher: {run_dir} must be on a persistent volume too (it decides --resume)")
    if on_worker and on_launcher and on_worker != on_launcher:
        problems.append(f"{run_dir}: the launcher and the workers mount different volumes there")
    return problems


# Variables the ranks read, which must reach them through mpirun -x.
RANK_ENV = ("OPENBLAS_", "OMP_", "NNTRAIN_")


def check(job, schema):
    # The conventions read the manifest's structure, which the schema vouches for.
    return schema_problems(job, schema) or convention_problems(job)


def breakages(job):
    """Broken copies of a good manifest, each with what must catch it."""
    def edit(f):
        j = copy.deepcopy(job)
        f(j)
        return j
    spec = lambda j: j["spec"]
    worker = lambda j: j["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    launcher = lambda j: j["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    return [
        ("a misspelt field (slotPerWorker)", edit(lambda j: spec(j).update(slotPerWorker=spec(j).pop("slotsPerWorker")))),
        ("a string where an integer goes", edit(lambda j: spec(j).update(slotsPerWorker="one"))),
        ("an unknown MPI implementation", edit(lambda j: spec(j).update(mpiImplementation="LAM"))),
        ("a container without a name", edit(lambda j: worker(j).pop("name"))),
        ("a bad memory quantity", edit(lambda j: worker(j)["resources"]["limits"].update(memory="2 gigs"))),
        ("an environment variable twice", edit(lambda j: launcher(j)["env"].append(dict(launcher(j)["env"][0])))),
        ("a worker running the image's entrypoint", edit(lambda j: worker(j).pop("command"))),
        ("OPENBLAS_NUM_THREADS not passed with -x", edit(lambda j: launcher(j).update(
            args=[a for i, a in enumerate(launcher(j)["args"]) if a != "-x" and launcher(j)["args"][i - 1] != "-x"]))),
        ("environment set on the workers", edit(lambda j: worker(j).update(env=[{"name": "OPENBLAS_NUM_THREADS", "value": "2"}]))),
        ("-n that does not match the workers", edit(lambda j: j["spec"]["mpiReplicaSpecs"]["Worker"].update(replicas=3))),
        ("a run directory off the volume", edit(lambda j: worker(j).pop("volumeMounts"))),
        ("a launcher that is never restarted", edit(lambda j: j["spec"]["mpiReplicaSpecs"]["Launcher"].update(restartPolicy="Never"))),
        ("a launcher started before the workers listen", edit(lambda j: spec(j).pop("launcherCreationPolicy"))),
        ("ranks bound to one core", edit(lambda j: launcher(j).update(
            args=[a for i, a in enumerate(launcher(j)["args"]) if a != "--bind-to" and launcher(j)["args"][i - 1] != "--bind-to"]))),
        ("an unknown metadata field", edit(lambda j: j["metadata"].update(namspace="default"))),
        ("a name too long for the workers' DNS names", edit(lambda j: j["metadata"].update(name="n" * 60))),
    ]


def main(argv):
    self_test = "--self-test" in argv
    paths = [a for a in argv if a != "--self-test"]
    if len(paths) != 2:
        print("usage: mpijob.py [--self-test] MANIFEST SCHEMA", file=sys.stderr)
        return 2
    manifest, schema_path = paths
    try:
        with open(manifest) as f:
            job = yaml.load(f, Loader=UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as e:
        print(f"{manifest}: cannot read: {e}".splitlines()[0], file=sys.stderr)
        return 2
    schema = yaml.safe_load(open(schema_path))
    problems = check(job, schema)
    for p in problems:
        print(f"{manifest}: {p}")
    if problems:
        return 1
    print(f"{manifest}: valid MPIJob (kubeflow.org/v2beta1 schema, strict fields) and follows the image's conventions")
    if not self_test:
        return 0
    missed = 0
    try:
        yaml.load("spec: {slotsPerWorker: 1}\nspec: {}\n", Loader=UniqueKeyLoader)
        print("  MISSED  : a field given twice")
        missed += 1
    except yaml.YAMLError as e:
        print(f"  rejected: a field given twice ({e.problem})")
    for what, broken in breakages(job):
        found = check(broken, schema)
        print(f"  {'rejected' if found else 'MISSED  '}: {what}" + (f" ({found[0]})" if found else ""))
        missed += not found
    if missed:
        print(f"{missed} broken manifest(s) passed the check")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
