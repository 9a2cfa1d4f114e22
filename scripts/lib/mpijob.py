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
    return problems + list_key_problems(schema, manifest, "")


DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def convention_problems(job):
    """What the operator and nntrain's image need beyond the schema."""
    problems = []
    if job.get("apiVersion") != "kubeflow.org/v2beta1" or job.get("kind") != "MPIJob":
        return ["apiVersion/kind: must be kubeflow.org/v2beta1 MPIJob"]
    name = job.get("metadata", {}).get("name", "")
    if not DNS_1123.match(name) or len(name) > 253:
        problems.append(f"metadata.name: {name!r} is not a DNS-1123 name")
    spec = job["spec"]
    replicas = spec.get("mpiReplicaSpecs", {})
    if set(replicas) != {"Launcher", "Worker"}:
        return problems + ["spec.mpiReplicaSpecs: needs exactly Launcher and Worker"]
    if spec.get("sshAuthMountPath") != "/home/mpiuser/.ssh":
        problems.append("spec.sshAuthMountPath: the image's sshd reads its keys from /home/mpiuser/.ssh")
    if "slotsPerWorker" not in spec:
        problems.append("spec.slotsPerWorker: say how many ranks each worker runs")
    if spec.get("runPolicy", {}).get("backoffLimit", 0) < 1:
        problems.append("spec.runPolicy.backoffLimit: at least 1, so a stopped launcher is started again and resumes")
    if replicas["Launcher"].get("restartPolicy") not in ("OnFailure", "ExitCode"):
        problems.append("mpiReplicaSpecs.Launcher.restartPolicy: OnFailure (or ExitCode), so exit 75 restarts the launcher")

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
    for e in worker.get("env", []):
        problems.append(f"mpiReplicaSpecs.Worker env {e['name']}: ranks start in ssh sessions and never see it; set it on the launcher and pass it with mpirun -x")

    command = launcher.get("command", []) + launcher.get("args", [])
    if command[:3] != ["nntrain-pod", "launcher", "mpirun"]:
        return problems + ["mpiReplicaSpecs.Launcher: command must be nntrain-pod launcher mpirun ..."]
    if "-n" in command:
        n = int(command[command.index("-n") + 1])
        slots = spec.get("slotsPerWorker", 1)
        workers = replicas["Worker"].get("replicas", 1)
        if n != slots * workers:
            problems.append(f"mpirun -n {n}: the workers have {workers} × {slots} slots")
    exported = {command[i + 1] for i, a in enumerate(command[:-1]) if a == "-x"}
    env = {e["name"]: e.get("value") for e in launcher.get("env", [])}
    for name in env:
        if name.startswith(("OPENBLAS_", "OMP_", "NNTRAIN_")) and name != "NNTRAIN_RUN_DIR" and name not in exported:
            problems.append(f"mpirun: -x {name} is missing, so the ranks never get it")
    if "OPENBLAS_NUM_THREADS" not in exported:
        problems.append("mpirun: -x OPENBLAS_NUM_THREADS is missing (ranks would size their threads by the node's cores)")
    if "--run-dir" not in command:
        return problems + ["nntrain: give --run-dir on the shared volume"]
    run_dir = command[command.index("--run-dir") + 1]
    if env.get("NNTRAIN_RUN_DIR") != run_dir:
        problems.append(f"Launcher env NNTRAIN_RUN_DIR: must be {run_dir}, so a restarted launcher resumes")

    def mounted(pod, c):
        claims = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
        return any(run_dir.startswith(m["mountPath"].rstrip("/") + "/") and m["name"] in claims
                   for m in c.get("volumeMounts", []))

    if not mounted(wpod, worker):
        problems.append(f"mpiReplicaSpecs.Worker: {run_dir} must be on a persistent volume (rank 0 writes it)")
    if not mounted(lpod, launcher):
        problems.append(f"mpiReplicaSpecs.Launcher: {run_dir} must be on the same persistent volume (it decides --resume)")
    return problems


def check(job, schema):
    return schema_problems(job, schema) + convention_problems(job)


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
        ("a launcher that is never restarted", edit(lambda j: j["spec"]["mpiReplicaSpecs"]["Launcher"].pop("restartPolicy"))),
    ]


def main(argv):
    self_test = "--self-test" in argv
    paths = [a for a in argv if a != "--self-test"]
    if len(paths) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    manifest, schema_path = paths
    try:
        job = yaml.safe_load(open(manifest))
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
