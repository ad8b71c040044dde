"""Deployment files, checked offline: the Kubernetes manifests against the Kubernetes JSON schemas
(bundled in kubernetes-validate, strict: unknown fields fail), docker-compose.yml, the Dockerfile,
the nginx balancer and the serverless manifests (deploy/knative, deploy/fc) against what the service
expects. No cluster, no Docker daemon, no cloud account; the image itself is built and run by
scripts/container_test.sh.

Neither Knative's Service nor Serverless Devs' s.yaml has a JSON schema in a registry package that
could be pinned here: Knative's CRD schema ships only in its release YAML (PyPI's
cloudcoil-models-knative-serving has pydantic models of it, not a schema), and the fc3 component's
props schema (src/schema.json in github.com/devsapp/fc3) only in the Serverless Devs registry. So
the Knative Service's pod spec is validated against the Kubernetes PodSpec schema (kubernetes-validate,
strict) plus the fields Knative's webhook admits with its default feature flags (knative/serving
pkg/apis/serving/fieldmask.go, k8s_validation.go), and s.yaml against the field names, types and
ranges of fc3's schema and Function Compute's documented limits, written out below."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from ocrhub.config import OcrConfig, ServerConfig, load_config, load_server_config
from ocrhub.serving import layout
from ocrhub.serving.layout import memory_bound_mb

try:
    import kubernetes_validate
except ImportError:  # a failure, not a skip: the manifests would go unchecked
    kubernetes_validate = None

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
PORT = 9000
UID = 10001
# The oldest and the newest Kubernetes version whose schemas kubernetes-validate bundles (1.25, 1.37).
_VERSIONS = kubernetes_validate.utils.all_versions() if kubernetes_validate else ["?"]
K8S_VERSIONS = sorted({_VERSIONS[0], _VERSIONS[-1]})


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[str, dict]:
    return {doc["kind"]: doc for path in MANIFESTS for doc in load_all(path)}


def gibibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i)", quantity).groups()
    return float(number) * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[unit] / 2**30


def env_of(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_kubernetes_schema(path, version):
    assert kubernetes_validate, (
        "kubernetes-validate is missing (pinned in requirements-dev.txt): pip install --no-deps -r requirements-dev.txt"
    )
    docs = load_all(path)
    assert docs, path
    for doc in docs:
        problem = schema_problem(doc, version)
        assert not problem, f"{path.name}: {doc['kind']} is not valid for Kubernetes {version}: {problem}"


def schema_problem(doc: dict, version: str) -> str:
    """What kubernetes-validate (strict) finds wrong with ``doc``, or ""."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return f"{err.message} at {'/'.join(map(str, err.absolute_path))}"
    return ""


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    deployment = resources()["Deployment"]
    image_names = {image["name"] for image in kustomization["images"]}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[0] in image_names


def test_deployment_probes_security_and_config():
    found = resources()
    deployment, service, hpa = found["Deployment"], found["Service"], found["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": PORT} and service["spec"]["ports"][0]["targetPort"] == "http"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe

    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    env = env_of(container)
    assert env["OCR_DATA_DIR"].startswith("/tmp/")  # the only writable path is on the emptyDir
    assert env["PORT"] == str(PORT)
    known = {"OCR_" + name.upper() for cls in (OcrConfig, ServerConfig) for name in cls.__dataclass_fields__}
    assert {name for name in env if name.startswith("OCR_")} <= known, "unknown OCR_* variable"
    # Sizing: workers x threads = the CPU limit (the launcher would otherwise count the node's cores).
    cpu = container["resources"]["limits"]["cpu"]
    assert int(env["OCR_WORKERS"]) * int(env["OCR_CPU_THREADS"]) == int(cpu)
    assert container["resources"]["requests"]["cpu"] == cpu  # HPA utilization is relative to requests
    memory = gibibytes(container["resources"]["limits"]["memory"])
    assert memory_bound_mb(load_server_config(env)) <= memory * 1024  # the README's bound, within the limit
    assert gibibytes(container["resources"]["requests"]["memory"]) <= memory
    assert pod["terminationGracePeriodSeconds"] > float(env["OCR_GRACEFUL_TIMEOUT"]) + 5

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def test_compose_services_healthcheck_and_limits():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"ocr", "ocr-replica", "lb"}
    for name in ("ocr", "ocr-replica"):
        service = services[name]
        assert service["build"] == "." and service["restart"] == "unless-stopped", name
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and f"127.0.0.1:{PORT}/health" in " ".join(check["test"]), name
        assert service["read_only"] is True and any(t.split(":")[0] == "/tmp" for t in service["tmpfs"]), name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and limits["memory"], name
        env = service["environment"]
        workers = int(re.search(r"(\d+)\}$", env["OCR_WORKERS"]).group(1))
        threads = int(re.search(r"(\d+)\}$", env["OCR_CPU_THREADS"]).group(1))
        assert workers * threads == int(float(limits["cpus"])), name  # the sizing rule, with defaults
        memory_mb = int(re.fullmatch(r"(\d+)g", limits["memory"]).group(1)) * 1024
        assert memory_bound_mb(load_server_config({"OCR_WORKERS": str(workers)})) <= memory_mb, name
    assert services["ocr"]["ports"] == ["${PORT:-9000}:9000"]
    assert "ports" not in services["ocr-replica"]  # reached through the balancer only
    assert services["ocr-replica"]["profiles"] == services["lb"]["profiles"] == ["scaled"]
    lb = services["lb"]
    assert lb["depends_on"]["ocr-replica"]["condition"] == "service_healthy"
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    listen = re.search(r"^\s*listen\s+(\d+);", (ROOT / "deploy" / "nginx.conf").read_text(), re.M).group(1)
    assert lb["ports"] == [f"${{LB_PORT:-9080}}:{listen}"]


def test_nginx_balances_the_replicas():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert conf.count("{") == conf.count("}")
    assert re.search(rf"server\s+ocr-replica:{PORT}\s+resolve;", conf)
    assert re.search(r"^\s*zone\s+\w+\s+\w+;", conf, re.M)  # "resolve" needs a shared zone
    assert "proxy_pass http://ocr;" in conf
    # Bodies up to the service's own limit reach it (so it answers its 413 envelope past it).
    limit_mb = int(re.search(r"client_max_body_size\s+(\d+)m;", conf).group(1))
    assert limit_mb * 1024 * 1024 >= ServerConfig.max_body_bytes
    read_timeout = int(re.search(r"proxy_read_timeout\s+(\d+)s;", conf).group(1))
    assert read_timeout > OcrConfig.request_timeout


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, its own after those of the stage it starts from; the unnamed last
    stage (the default target) is "" and ``BASE_IMAGE`` stands for the base image."""
    stages, current = {}, None
    for kind, arg in dockerfile_instructions():
        if kind == "FROM":
            parent, _, name = arg.partition(" AS ")
            current = stages[name.strip()] = list(stages.get(parent.strip(), []))
        elif current is not None:
            current.append((kind, arg))
    return stages


@pytest.mark.parametrize("target", ["", "lean"], ids=["full", "lean"])
def test_dockerfile_contract(target):
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)
    assert args["BASE_IMAGE"] == "python:3.11-slim" and instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    stages = dockerfile_stages()
    build = stages["build" if target == "" else "lean-build"] + stages["models"]
    runs = " ".join(arg for kind, arg in build if kind == "RUN")
    requirements = "requirements.txt" if target == "" else "requirements-lean.txt"
    assert f"pip install --no-deps --no-compile -r {requirements}" in runs
    assert "pip install --no-deps --no-compile --no-build-isolation -e ." in runs
    assert "scripts/fetch_models.py" in runs and "scripts/image_smoke_test.py" in runs
    if target == "":
        assert all(f"/app/modules/{name}" in runs for name in ("ocr_system", "ocr_det", "ocr_cls", "ocr_rec"))
    image = stages[target]
    user = [arg for kind, arg in image if kind == "USER"]
    assert user and user[-1].split(":")[0] == str(UID)
    assert ("EXPOSE", str(PORT)) in image
    healthcheck = next(arg for kind, arg in image if kind == "HEALTHCHECK")
    assert "/health" in healthcheck and "CMD [" in healthcheck
    entrypoint = next(arg for kind, arg in image if kind == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["ocrhub-serve"]  # exec form: PID 1 gets SIGTERM
    env = dict(pair.split("=", 1) for kind, arg in image if kind == "ENV" for pair in shlex.split(arg))
    assert env["OCR_DATA_DIR"] == "/tmp/ocrhub" and env["PORT"] == str(PORT)
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerignore_keeps_the_context_small():
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "inference", "**/__pycache__"} <= ignored
    copied = {arg.split()[0] for kind, arg in dockerfile_instructions() if kind == "COPY" and not arg.startswith("--")}
    assert not copied & ignored, "the Dockerfile copies an ignored path"


# --- Serverless: Knative Serving (deploy/knative) and Function Compute through Serverless Devs (deploy/fc) ---

KNATIVE = ROOT / "deploy" / "knative" / "service.yaml"
FC = ROOT / "deploy" / "fc" / "s.yaml"
# The time one queued request is taken to need on a worker of 1-2 threads when sizing an instance's
# concurrency: a few photos or PDF pages (one photo takes 0.2-0.5 s on 2 threads, about 1.8x that on 1).
REQUEST_SECONDS = 3.0

# What Knative's webhook admits with its default feature flags (pkg/apis/serving/fieldmask.go,
# k8s_validation.go); anything else is refused when the Service is applied.
KNATIVE_REVISION_FIELDS = {"containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"}
KNATIVE_POD_FIELDS = {
    "containers",
    "volumes",
    "serviceAccountName",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",  # false only
}
KNATIVE_CONTAINER_FIELDS = {
    "name",
    "args",
    "command",
    "env",
    "envFrom",
    "workingDir",
    "image",
    "imagePullPolicy",
    "ports",
    "resources",
    "securityContext",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
}
KNATIVE_CONTAINER_SECURITY_FIELDS = {
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "seccompProfile",
    "privileged",  # false only
}
KNATIVE_VOLUME_SOURCES = {"secret", "configMap", "projected", "emptyDir"}
KNATIVE_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}  # Knative sets them
KNATIVE_RESERVED_PORTS = {8008, 8012, 8013, 8022, 9090, 9091}  # the queue-proxy's
KNATIVE_AUTOSCALING = {
    "class",
    "metric",
    "min-scale",
    "max-scale",
    "initial-scale",
    "target",
    "target-utilization-percentage",
    "target-burst-capacity",
    "scale-down-delay",
    "scale-to-zero-pod-retention-period",
    "window",
    "panic-window-percentage",
    "panic-threshold-percentage",
    "activation-scale",
    "metric-aggregation-algorithm",
}
QUEUE_SIDECAR = "queue.sidecar.serving.knative.dev/"

# The fc3 component's props (its schema.json: IProps and the definitions below it) and Function
# Compute 3.0's limits (vCPU 0.05-16 in steps of 0.05, memory 128-32768 MB in steps of 64 at 1-4 GB
# per vCPU, disk 512 MB or 10 GB, 32 MB per synchronous request).
FC3_PROPS = {
    "region": str,
    "functionName": str,
    "description": str,
    "runtime": str,
    "cpu": (int, float),
    "memorySize": int,
    "diskSize": int,
    "timeout": int,
    "instanceConcurrency": int,
    "internetAccess": bool,
    "customContainerConfig": dict,
    "environmentVariables": dict,
    "triggers": list,
    "role": str,
    "logConfig": (dict, str),
    "vpcConfig": (dict, str),
    "nasConfig": (dict, str),
    "scalingConfig": dict,
    "instanceLifecycleConfig": dict,
    "tags": list,
}
FC3_CUSTOM_CONTAINER = {
    "image": str,
    "port": int,
    "command": list,
    "entrypoint": list,
    "healthCheckConfig": dict,
    "registryConfig": dict,
}
FC3_HEALTH_CHECK = {  # field: (low, high), as Function Compute's CustomHealthCheckConfig documents them
    "httpGetUrl": None,
    "initialDelaySeconds": (0, 120),
    "periodSeconds": (1, 120),
    "timeoutSeconds": (1, 3),
    "failureThreshold": (1, 120),
    "successThreshold": (1, 120),
}
FC3_TRIGGER = {"triggerName", "triggerType", "triggerConfig", "description", "qualifier", "invocationRole", "sourceArn"}
FC3_HTTP_TRIGGER = {"authType", "methods", "disableURLInternet", "authConfig"}
FC_MAX_REQUEST_BYTES = 32 * 2**20


def instance_capacity(server: ServerConfig) -> int:
    """Requests one instance can hold: one per worker, plus those its queue clears within OCR_QUEUE_TIMEOUT."""
    return server.workers + server.solo + int(server.queue_timeout // REQUEST_SECONDS)


def check_instance(env: dict[str, str], *, concurrency: int, cpus: float, memory_mb: float, timeout: float, monkeypatch) -> None:
    """What a serverless instance must agree on with the server it runs: the layout, the memory bound,
    the concurrency the platform sends it and the time it allows a request."""
    known = {"OCR_" + name.upper() for cls in (OcrConfig, ServerConfig) for name in cls.__dataclass_fields__}
    assert {name for name in env if name.startswith("OCR_")} <= known, "unknown OCR_* variable"
    assert env["OCR_DATA_DIR"].startswith("/tmp/")  # the only place written
    server = load_server_config(env)
    # The layout is set by hand, one worker and no solo worker, and the launcher keeps it in this instance.
    assert (server.workers, server.solo_worker) == (1, "false")
    assert server.workers * int(env["OCR_CPU_THREADS"]) == cpus
    monkeypatch.setattr(layout, "usable_cores", lambda: int(cpus))
    monkeypatch.setattr(layout, "usable_memory_mb", lambda: int(memory_mb))
    assert layout.default_layout(server, load_config(environ=env)) == server
    assert memory_bound_mb(server) <= memory_mb, "the README's memory bound is over the instance's memory"
    # Concurrency: what the platform lets in is what the instance can hold, so a request the server
    # would turn away (queue timeout, queue full, body budget) waits at the platform instead, and scales it.
    assert concurrency == instance_capacity(server), (concurrency, instance_capacity(server))
    assert concurrency > server.workers  # one request waiting: the worker never idles between requests
    if hasattr(server, "queue_size") and server.queue_size:
        assert concurrency - server.workers <= server.queue_size
    assert server.max_buffered_bytes >= concurrency * server.max_body_bytes
    # Time: the platform waits longer than the server takes to answer, 504 envelope included.
    work = float(env["OCR_REQUEST_TIMEOUT"]) + server.queue_timeout + server.body_timeout
    assert timeout > work and timeout > server.graceful_timeout, (timeout, work)


def knative_service() -> dict:
    (service,) = load_all(KNATIVE)
    return service


def knative_pod(service: dict) -> dict:
    """The revision template's pod spec without Knative's own fields: a Kubernetes PodSpec."""
    return {k: v for k, v in service["spec"]["template"]["spec"].items() if k not in KNATIVE_REVISION_FIELDS}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_knative_pod_spec_matches_kubernetes_schema(version):
    assert kubernetes_validate, "kubernetes-validate is missing (pinned in requirements-dev.txt)"
    service = knative_service()
    template = service["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": service["metadata"]["name"], **template["metadata"]},
        "spec": knative_pod(service),
    }
    problem = schema_problem(pod, version)
    assert not problem, f"the Knative Service's pod spec is not valid for Kubernetes {version}: {problem}"


def test_knative_service_uses_what_knative_admits():
    service = knative_service()
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    assert set(service) <= {"apiVersion", "kind", "metadata", "spec"} and set(service["spec"]) <= {"template", "traffic"}
    template = service["spec"]["template"]
    assert set(template) <= {"metadata", "spec"}
    annotations = template["metadata"]["annotations"]
    assert all(isinstance(v, str) for v in annotations.values()), "annotations must be strings"
    for key in annotations:
        group, name = key.split("/", 1)
        assert (group == "autoscaling.knative.dev" and name in KNATIVE_AUTOSCALING) or key.startswith(QUEUE_SIDECAR), key
    spec = template["spec"]
    assert isinstance(spec["containerConcurrency"], int) and isinstance(spec["timeoutSeconds"], int)
    pod = knative_pod(service)
    assert set(pod) <= KNATIVE_POD_FIELDS, set(pod) - KNATIVE_POD_FIELDS
    assert pod.get("automountServiceAccountToken", False) is False
    (container,) = pod["containers"]
    assert set(container) <= KNATIVE_CONTAINER_FIELDS, set(container) - KNATIVE_CONTAINER_FIELDS
    assert set(container["securityContext"]) <= KNATIVE_CONTAINER_SECURITY_FIELDS
    assert container["securityContext"].get("privileged", False) is False
    assert "add" not in container["securityContext"]["capabilities"]
    assert not {item["name"] for item in container["env"]} & KNATIVE_RESERVED_ENV
    (port,) = container["ports"]
    assert port["name"] in {"http1", "h2c", ""} and port["containerPort"] not in KNATIVE_RESERVED_PORTS
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume in volumes.values():
        assert set(volume) - {"name"} <= KNATIVE_VOLUME_SOURCES, volume
    for mount in container["volumeMounts"]:
        if "emptyDir" not in volumes[mount["name"]]:  # other volume kinds must be mounted read-only
            assert mount.get("readOnly") is True, mount


def test_knative_service_matches_the_server_settings(monkeypatch):
    service = knative_service()
    template = service["spec"]["template"]
    annotations, spec = template["metadata"]["annotations"], template["spec"]
    (container,) = spec["containers"]
    env = env_of(container)

    assert container["image"].endswith(":lean")  # the lean image (README, Serverless)
    # Scale to zero, on concurrency (the KPA: the HPA class cannot scale to zero), under the hard limit.
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/metric"] == "concurrency"
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
    target = float(annotations["autoscaling.knative.dev/target"])
    utilization = float(annotations.get("autoscaling.knative.dev/target-utilization-percentage", "70")) / 100
    assert 1 <= target * utilization <= spec["containerConcurrency"]

    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    check_instance(
        env,
        concurrency=spec["containerConcurrency"],
        cpus=float(limits["cpu"]),
        memory_mb=gibibytes(limits["memory"]) * 1024,
        timeout=spec["timeoutSeconds"],
        monkeypatch=monkeypatch,
    )
    # A Guaranteed pod (requests = limits in both containers), so the static CPU manager can give it cores.
    assert requests == limits
    for resource in ("cpu", "memory"):
        request, limit = (annotations[f"{QUEUE_SIDECAR}{resource}-resource-{kind}"] for kind in ("request", "limit"))
        assert request == limit, resource

    # Probes: /health on the container's port number (the kubelet runs startup and liveness probes
    # itself, and Knative renames the port); readiness without a period: the queue-proxy's fast probing.
    (port,) = container["ports"]
    assert port == {"name": "http1", "containerPort": PORT}
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": PORT}, probe
    assert "periodSeconds" not in container["readinessProbe"]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] <= 1 and startup["periodSeconds"] * startup["failureThreshold"] >= 30

    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == UID
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Beside deploy/k8s in its namespace: the same API-key Secret, mounted where OCR_API_KEYS_FILE points,
    # and neither the name of its Service nor pods that its Service and PodDisruptionBudget select.
    found = resources()
    keys_dir = str(Path(env["OCR_API_KEYS_FILE"]).parent)
    k8s_volumes = {v["name"]: v for v in found["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[keys_dir]]["secret"] == k8s_volumes["api-keys"]["secret"]
    assert service["metadata"]["name"] != found["Service"]["metadata"]["name"]
    labels = template["metadata"]["labels"]
    for selector in (found["Service"]["spec"]["selector"], found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= labels.items(), selector


def fc_function() -> tuple[dict, dict]:
    """s.yaml and its one fc3 resource's props, with Serverless Devs' magic variables resolved as `s`
    would with an empty environment: ${vars.NAME}, ${env('NAME', 'default')} (the default). An
    ${env('NAME')} without a default stays: `s deploy` stops unless the deployer's environment has it."""
    spec = yaml.safe_load(FC.read_text())
    variables = {}

    def resolve(value):
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, str):
            return value
        value = re.sub(r"\$\{env\('(\w+)',\s*'([^']*)'\)\}", lambda m: m.group(2), value)
        return re.sub(r"\$\{vars\.(\w+)\}", lambda m: variables[m.group(1)], value)

    variables.update(resolve(spec.get("vars", {})))
    (resource,) = spec["resources"].values()
    return spec, resolve(resource["props"])


def test_fc_s_yaml_structure():
    spec, props = fc_function()
    assert str(spec["edition"]) == "3.0.0"  # Serverless Devs 3 (s v3)
    assert set(spec) <= {"edition", "name", "access", "vars", "resources", "template", "flow", "actions", "extend"}
    assert isinstance(spec["name"], str) and isinstance(spec["access"], str)
    (resource,) = spec["resources"].values()
    assert resource["component"] == "fc3"
    # fc3's required props for a custom container, and only props fc3 knows, of its types.
    assert {"region", "functionName", "runtime", "customContainerConfig"} <= set(props)
    assert set(props) <= set(FC3_PROPS), set(props) - set(FC3_PROPS)
    for key, value in props.items():
        assert isinstance(value, FC3_PROPS[key]) and not (isinstance(value, bool) and FC3_PROPS[key] is not bool), key
    assert props["runtime"] == "custom-container" and "code" not in props and "handler" not in props
    assert re.fullmatch(r"[a-z]+-[a-z]+(-\d+)?", props["region"]), props["region"]
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", props["functionName"])
    # Function Compute's sizes.
    cpu, memory = props["cpu"], props["memorySize"]
    assert 0.05 <= cpu <= 16 and round(cpu / 0.05, 6).is_integer()
    assert 128 <= memory <= 32768 and memory % 64 == 0
    assert 1 <= memory / 1024 / cpu <= 4, "Function Compute takes 1 to 4 GB per vCPU"
    assert props["diskSize"] in (512, 10240)
    assert 1 <= props["timeout"] <= 86400 and 1 <= props["instanceConcurrency"] <= 200
    container = props["customContainerConfig"]
    assert set(container) <= set(FC3_CUSTOM_CONTAINER)
    assert all(isinstance(container[k], FC3_CUSTOM_CONTAINER[k]) for k in container)
    check = container["healthCheckConfig"]
    assert set(check) <= set(FC3_HEALTH_CHECK)
    for key, bounds in FC3_HEALTH_CHECK.items():
        if bounds and key in check:
            assert isinstance(check[key], int) and bounds[0] <= check[key] <= bounds[1], key
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props["environmentVariables"].items()), (
        "environment variables must be strings: quote numbers"
    )
    (trigger,) = props["triggers"]
    assert set(trigger) <= FC3_TRIGGER and trigger["triggerType"] == "http"
    assert set(trigger["triggerConfig"]) <= FC3_HTTP_TRIGGER
    assert trigger["triggerConfig"]["authType"] in ("anonymous", "function", "jwt")
    methods = set(trigger["triggerConfig"]["methods"])
    assert {"GET", "POST"} <= methods <= {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}


def test_fc_function_matches_the_server_settings(monkeypatch):
    _, props = fc_function()
    container, env = props["customContainerConfig"], props["environmentVariables"]
    assert container["image"].endswith(":lean")  # the lean image (README, Serverless)
    assert container["image"].startswith(f"registry.{props['region']}.aliyuncs.com/")  # ACR in the function's region
    assert container["port"] == int(env["PORT"]) == PORT
    assert container["healthCheckConfig"]["httpGetUrl"] == "/health"
    check = container["healthCheckConfig"]
    assert check["periodSeconds"] * check["failureThreshold"] >= 30  # time to load
    # The trigger is public (anonymous), so API keys are required: from the deployer's environment.
    from_deployer = {k for k, v in env.items() if "${" in v}
    assert from_deployer == {"OCR_API_KEYS"} and env["OCR_API_KEYS"] == "${env('OCR_API_KEYS')}"
    assert props["triggers"][0]["triggerConfig"]["authType"] == "anonymous"
    served = {k: v for k, v in env.items() if k not in from_deployer}
    assert int(served["OCR_MAX_BODY_BYTES"]) < FC_MAX_REQUEST_BYTES  # the server's 413, not the platform's
    check_instance(
        served,
        concurrency=props["instanceConcurrency"],
        cpus=props["cpu"],
        memory_mb=props["memorySize"],
        timeout=props["timeout"],
        monkeypatch=monkeypatch,
    )
