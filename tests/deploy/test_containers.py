"""The container set-up agrees with the code it runs: deploy/Dockerfile, deploy/docker-compose.yml,
deploy/.env.example and the Helm chart in deploy/helm/okrsync.

Static checks only (no Docker engine, no helm binary in CI): every OKRSYNC_* name they mention is a real settings
field (pydantic-settings silently ignores a misspelt one), every command they run is a real `okrsync` command, the
image runs as the non-root user the chart expects, the probes hit /healthz and /readyz, and every chart template is
YAML once its ``{{ … }}`` expressions are crudely blanked out, referring only to values and helpers that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import typing
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel, SecretStr

from service.cli import app
from service.kit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
CHART = DEPLOY / "helm" / "okrsync"
TEMPLATES = sorted((CHART / "templates").glob("*.yaml"))
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"
# compose's own variables (interpolation, the postgres image): documented in .env.example, never read by okrsync
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD", "SALESFORCE_JWT_KEY_FILE"}
ENV_NAME = re.compile(r"\bOKRSYNC_[A-Z0-9_]+")


# -- settings ------------------------------------------------------------------------------------------------------
def _settings_fields(model: type[BaseModel], prefix: str = "OKRSYNC_") -> Iterator[tuple[str, Any]]:
    """(environment name, annotation) of every leaf field, nested models joined with "__"; a list (of models) is one
    variable holding JSON (OKRSYNC_CONNECTIONS)."""
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is list:
            yield f"{prefix}{name.upper()}", info.annotation
            continue
        nested = [a for a in typing.get_args(info.annotation) or (info.annotation,) if _is_model(a)]
        if nested:
            yield from _settings_fields(nested[0], f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", info.annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


SETTINGS = dict(_settings_fields(Settings))
# "OKRSYNC_SALESFORCE__" and the like: prose names a group of settings by its prefix
PREFIXES = {name[: name.rindex("__") + 2] for name in SETTINGS if "__" in name}


def _holds_secret(annotation: Any) -> bool:
    """A SecretStr, or a list/union of models with one inside (OKRSYNC_CONNECTIONS holds tokens)."""
    parts = typing.get_args(annotation) or (annotation,)
    return any(part is SecretStr or _holds_secret_model(part) for part in parts)


def _holds_secret_model(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not None:
        return _holds_secret(annotation)
    return _is_model(annotation) and any(_holds_secret(f.annotation) for f in annotation.model_fields.values())


SECRETS = {name for name, annotation in SETTINGS.items() if _holds_secret(annotation)}


def test_the_settings_walk_sees_nested_and_secret_fields() -> None:
    assert "OKRSYNC_DATABASE_URL" in SETTINGS
    assert "OKRSYNC_SALESFORCE__JWT_PRIVATE_KEY_FILE" in SETTINGS
    assert "OKRSYNC_SERVE__PORT" in SETTINGS
    assert {"OKRSYNC_HUBSPOT__ACCESS_TOKEN", "OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET"} <= SECRETS
    assert "OKRSYNC_CONNECTIONS" in SETTINGS and "OKRSYNC_CONNECTIONS" in SECRETS  # JSON holding tokens
    assert not any(name.startswith("OKRSYNC_CONNECTIONS__") for name in SETTINGS)
    assert "OKRSYNC_DATABASE_URL" not in SECRETS


DEPLOY_FILES = [DOCKERFILE, COMPOSE, ENV_EXAMPLE, DEPLOY / "README.md", CHART / "values.yaml", *TEMPLATES]
DEPLOY_FILES += [CHART / "templates" / "_helpers.tpl", CHART / "templates" / "NOTES.txt"]


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_okrsync_variable_named_is_a_settings_field(path: Path) -> None:
    unknown = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for name in ENV_NAME.findall(line):
            if name not in SETTINGS and name not in PREFIXES:
                unknown.add(f"{path.name}:{number}: {name}")
    assert not unknown, "not okrsync settings (see service/kit/settings.py):\n" + "\n".join(sorted(unknown))


def test_env_example_documents_every_setting_a_deployment_uses() -> None:
    text = ENV_EXAMPLE.read_text()
    missing = [n for n in SETTINGS if not n.startswith("OKRSYNC_SANDBOX__") and not re.search(rf"\b{n}\b", text)]
    assert not missing, f"document these in deploy/.env.example: {missing}"


def _env_example_assignments() -> dict[str, str]:
    """NAME=value lines of .env.example, commented out or not."""
    pairs = re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return dict(pairs)


def test_env_example_names_only_settings_and_compose_variables() -> None:
    assignments = _env_example_assignments()
    assert set(assignments) - set(SETTINGS) <= COMPOSE_VARIABLES
    interpolated = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    assert interpolated <= set(assignments), "compose variables missing from .env.example"


def test_env_example_values_are_valid_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncomment every example value: okrsync must accept each for its setting (type, range, JSON)."""
    for name in list(__import__("os").environ):
        if name.startswith("OKRSYNC_"):
            monkeypatch.delenv(name)
    lines = [f"{n}={v}" for n, v in _env_example_assignments().items() if n in SETTINGS and v]
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.salesforce is not None and settings.salesforce.effective_auth_mode() == "jwt"
    assert settings.salesforce.custom_fields == {"Opportunity": ["Segment__c"]}
    assert settings.hubspot is not None


# -- Dockerfile ----------------------------------------------------------------------------------------------------
def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) per stage, continuation lines joined, ARG defaults substituted in FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        if keyword == "FROM":
            rest = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest)
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest.strip()))
    return stages


def _instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def _image_env() -> dict[str, str]:
    (env,) = _instructions(_dockerfile_stages()[-1], "ENV")
    return dict(shlex.split(pair)[0].split("=", 1) for pair in re.findall(r"\S+=\S+", env))


def test_image_builds_from_python_311_slim_in_two_stages() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    assert all(_instructions(s, "FROM")[0].split()[0] == "python:3.11-slim" for s in stages)
    final = stages[-1]
    assert any("--from=build" in c and "/opt/venv" in c for c in _instructions(final, "COPY"))
    assert not any(re.search(r"gcc|build-essential|apt-get install", r) for r in _instructions(final, "RUN"))


def test_final_image_runs_okrsync_as_the_non_root_user_the_chart_expects() -> None:
    final = _dockerfile_stages()[-1]
    user = _instructions(final, "USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets Kubernetes verify runAsNonRoot"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert json.loads(_instructions(final, "ENTRYPOINT")[-1]) == ["okrsync"]
    assert json.loads(_instructions(final, "CMD")[-1]) == ["serve"]
    (healthcheck,) = _instructions(final, "HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck
    env = _image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["OKRSYNC_SERVE__HOST"] == "0.0.0.0"


def test_one_port_everywhere() -> None:
    port = _image_env()["OKRSYNC_SERVE__PORT"]
    assert _instructions(_dockerfile_stages()[-1], "EXPOSE") == [port]
    assert yaml.safe_load((CHART / "values.yaml").read_text())["sidecar"]["port"] == int(port)
    sidecar = yaml.safe_load(COMPOSE.read_text())["services"]["sidecar"]
    assert all(mapping.rsplit(":", 1)[1] == port for mapping in sidecar["ports"])
    assert f":{port}/readyz" in json.dumps(sidecar["healthcheck"]["test"])


def test_no_secret_is_baked_into_the_image_or_written_in_plain_configuration() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    plain = set(_image_env())
    for service in compose["services"].values():
        plain |= set(service.get("environment") or {})
    plain |= set(yaml.safe_load((CHART / "values.yaml").read_text())["env"])
    assert not plain & SECRETS


def test_image_ships_the_deploy_files_the_code_reads_where_it_looks_for_them() -> None:
    from connectors.hubspot.writer import DEPLOY_DIR
    from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR

    copies = [c.split() for c in _instructions(_dockerfile_stages()[-1], "COPY") if "--from" not in c]
    targets = {dest.rstrip("/") for *_sources, dest in copies}
    for wanted in (DEPLOY_DIR, DEFAULT_METADATA_DIR / "objects"):
        assert f"{SITE_PACKAGES}/{wanted.relative_to(ROOT)}" in targets


def test_dockerignore_lets_every_copied_source_into_the_context() -> None:
    kept = [p[1:].rstrip("/") for p in (ROOT / ".dockerignore").read_text().split() if p.startswith("!")]
    sources = []
    for stage in _dockerfile_stages():
        for copy in _instructions(stage, "COPY"):
            if "--from" not in copy:
                sources += copy.split()[:-1]
    for source in sources:
        assert any(source == k or source.startswith(f"{k}/") or fnmatch(source, k) for k in kept), source


# -- commands ------------------------------------------------------------------------------------------------------
def _check_command(args: list[str]) -> None:
    """Parse ``okrsync ARGS`` as the CLI would (subcommands, options, choices) without running it."""
    command: Any = typer.main.get_command(app)
    rest = list(args)
    while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"`okrsync {' '.join(args)}`: okrsync has no command {name!r} here"
        command = command.commands[name]
    assert not getattr(command, "commands", None), f"`okrsync {' '.join(args)}` names a group, not a command"
    command.make_context("okrsync", rest)


def _compose_commands() -> dict[str, list[str]]:
    return {name: s["command"] for name, s in yaml.safe_load(COMPOSE.read_text())["services"].items() if "command" in s}


def _chart_commands() -> list[list[str]]:
    pods = [doc["spec"]["template"]["spec"] for doc in _rendered() if doc["kind"] in ("Deployment", "Job")]
    return [container["args"] for pod in pods for container in pod["containers"]]


COMMANDS = [
    ["db", "upgrade"],
    ["serve"],
    ["serve", "--no-worker"],
    ["worker"],
    ["token", "create", "--name", "admin", "--role", "admin"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_commands_the_containers_run_exist(args: list[str]) -> None:
    _check_command(args)


def test_compose_and_chart_run_only_those_commands() -> None:
    assert _compose_commands() == {
        "migrate": ["db", "upgrade"],
        "sidecar": ["serve", "--no-worker"],
        "worker": ["worker"],
    }
    for args in _chart_commands():
        assert [a for a in args if a != "--no-worker"] in (["db", "upgrade"], ["serve"], ["worker"])
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "okrsync token create --name admin --role admin" in notes


# -- docker compose ------------------------------------------------------------------------------------------------
def test_compose_orders_postgres_migration_then_processes() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "sidecar", "worker"}
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["volumes"][0].split(":")[0] in compose["volumes"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("sidecar", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["sidecar"]["env_file"] == ".env"


def test_compose_mounts_the_salesforce_key_where_the_env_example_points() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    (secret,) = compose["secrets"]
    for name in ("migrate", "sidecar", "worker"):
        assert compose["services"][name]["secrets"] == [secret]
    assert _env_example_assignments()["OKRSYNC_SALESFORCE__JWT_PRIVATE_KEY_FILE"] == f"/run/secrets/{secret}"


# -- Helm chart ----------------------------------------------------------------------------------------------------
TEMPLATE_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}")


def _crude_render(text: str) -> str:
    """Drop lines that hold only a template action (control flow, a block-valued include), blank the others."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            continue
        lines.append(TEMPLATE_EXPRESSION.sub("TEMPLATED", line))
    return "\n".join(lines)


def _rendered() -> list[dict[str, Any]]:
    return [doc for path in TEMPLATES for doc in yaml.safe_load_all(_crude_render(path.read_text())) if doc]


def _rendered_kind(kind: str, name_suffix: str = "") -> dict[str, Any]:
    (doc,) = [d for d in _rendered() if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    return doc


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_chart_template_is_one_kubernetes_object(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(_crude_render(path.read_text())) if d]
    assert len(docs) == 1
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(docs[0]) or docs[0]["kind"] == "Secret"


def test_chart_metadata_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["apiVersion"] == "v2" and chart["name"] == "okrsync"
    assert chart["appVersion"] == version


def test_chart_templates_refer_only_to_existing_values_and_helpers() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    sources = {p.name: p.read_text() for p in (CHART / "templates").iterdir()}
    defined = set(re.findall(r'define "([^"]+)"', sources["_helpers.tpl"]))
    for name, text in sources.items():
        for helper in re.findall(r'include "([^"]+)"', text):
            assert helper in defined, f"{name}: no helper {helper}"
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node: Any = values
            for key in path.strip(".").split("."):
                assert isinstance(node, dict) and key in node, f"{name}: .Values{path} is not in values.yaml"
                node = node[key]


def test_migration_runs_as_a_pre_install_and_pre_upgrade_hook() -> None:
    job = _rendered_kind("Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert set(hooks) == {"pre-install", "pre-upgrade"}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_sidecar_probes_liveness_and_readiness() -> None:
    (container,) = _rendered_kind("Deployment", "-sidecar")["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"][0] == "serve"
    assert [p["name"] for p in container["ports"]] == ["http"]
    service = _rendered_kind("Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_worker_has_no_port_and_no_http_probe() -> None:
    (container,) = _rendered_kind("Deployment", "-worker")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    assert not {"ports", "livenessProbe", "readinessProbe"} & set(container)


def test_every_pod_is_non_root_read_only_with_a_writable_tmp() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "toYaml .Values.podSecurityContext" in helpers
    assert re.search(r"- name: tmp\n\s+emptyDir: \{\}", helpers) and "mountPath: /tmp" in helpers
    for path in ("migration-job.yaml", "sidecar-deployment.yaml", "worker-deployment.yaml"):
        text = (CHART / "templates" / path).read_text()
        for piece in ('include "okrsync.podSpec"', "toYaml .Values.securityContext", 'include "okrsync.volumeMounts"'):
            assert piece in text, f"{path} lacks {piece}"
        assert 'include "okrsync.env"' in text


def test_chart_creates_a_secret_only_when_asked() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secret"]["create"] is False
    assert values["database"]["existingSecret"]
    first_line = (CHART / "templates" / "secret.yaml").read_text().splitlines()[0]
    assert first_line == "{{- if .Values.secret.create }}"
