"""Deployment files, checked offline: the Kubernetes manifests against the Kubernetes JSON schemas
(bundled in kubernetes-validate, strict: unknown fields fail), docker-compose.yml, the Dockerfile
and the nginx balancer against what the service expects. No cluster, no Docker daemon; the image
itself is built and run by scripts/container_test.sh."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from ocrhub.config import OcrConfig, ServerConfig, load_server_config
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
        problem = ""
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problem = f"{err.message} at {'/'.join(map(str, err.absolute_path))}"
        assert not problem, f"{path.name}: {doc['kind']} is not valid for Kubernetes {version}: {problem}"


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


def test_dockerfile_contract():
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    args = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)
    assert args["BASE_IMAGE"] == "python:3.11-slim" and instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    runs = " ".join(arg for kind, arg in instructions if kind == "RUN")
    assert "pip install --no-deps --no-compile -r requirements.txt" in runs
    assert "pip install --no-deps --no-compile --no-build-isolation -e ." in runs
    assert "scripts/fetch_models.py" in runs
    assert all(f"/app/modules/{name}" in runs for name in ("ocr_system", "ocr_det", "ocr_cls", "ocr_rec"))
    final = kinds[len(kinds) - 1 - kinds[::-1].index("FROM") :]  # the last stage's instructions
    last_stage = instructions[len(instructions) - len(final) :]
    user = [arg for kind, arg in last_stage if kind == "USER"]
    assert user and user[-1].split(":")[0] == str(UID)
    assert ("EXPOSE", str(PORT)) in last_stage
    healthcheck = next(arg for kind, arg in last_stage if kind == "HEALTHCHECK")
    assert "/health" in healthcheck and "CMD [" in healthcheck
    entrypoint = next(arg for kind, arg in last_stage if kind == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["ocrhub-serve"]  # exec form: PID 1 gets SIGTERM
    env = dict(pair.split("=", 1) for kind, arg in last_stage if kind == "ENV" for pair in shlex.split(arg))
    assert env["OCR_DATA_DIR"] == "/tmp/ocrhub" and env["PORT"] == str(PORT)
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerignore_keeps_the_context_small():
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "inference", "**/__pycache__"} <= ignored
    copied = {arg.split()[0] for kind, arg in dockerfile_instructions() if kind == "COPY" and not arg.startswith("--")}
    assert not copied & ignored, "the Dockerfile copies an ignored path"
