"""The project's own rules for its Docker files: what no linter knows.

``make lint`` runs the tools themselves: hadolint (configured by .hadolint.yaml) on
docker/Dockerfile and check-jsonschema (the Compose Specification schema it ships) on
docker/compose.yaml. These tests assert the rest, from the files alone (no Docker, no
network):

docker/Dockerfile
- it is a multi-stage build (a builder and a final stage);
- every source it copies from the build context exists;
- .dockerignore excludes none of those sources, nor any file under a copied folder;
- it copies every package of pyproject.toml, both lock files, pyproject.toml, alembic.ini
  and migrations/;
- the final stage switches to a non-root USER;
- the final stage has a HEALTHCHECK (hadolint has no rule for a missing one);
- the final stage EXPOSEs 8000;
- ``ARG VERSION=`` (the image's version label) is pyproject.toml's version.

.dockerignore
- it keeps secrets and local state out of the build context (.env and its variants, the
  generated .secret-key, app.db, .venv, .git);
- it keeps .env.example in.

docker/compose.yaml
- the five services exist (postgres, redis, migrate, api, jobs);
- every depends_on names a service of the file;
- migrate, api and jobs run one image, built from docker/Dockerfile with the repository
  root as context;
- api and jobs wait for migrate to complete successfully;
- nothing stops ``--scale api=N`` or ``--scale jobs=N`` (a fixed host port, a
  container_name, host networking);
- no ``${`` is left unterminated (Compose refuses the file);
- every variable it interpolates is documented in .env.example.

.env.example
- it sets nothing: every ``NAME=value`` line is commented out, so that copying it to .env
  changes no default;
- it documents every field of ``entrypoints.settings.Settings``;
- the value it shows for each setting is that setting's default.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import TypeAdapter, ValidationError

from entrypoints.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

REQUIRED_SERVICES = ("postgres", "redis", "migrate", "api", "jobs")
APP_SERVICES = ("migrate", "api", "jobs")
SCALABLE_SERVICES = ("api", "jobs")
RUNTIME_FILES = (
    "requirements-bootstrap.lock",
    "requirements.lock",
    "pyproject.toml",
    "alembic.ini",
    "migrations",
)
KEPT_OUT = (".env", ".env.production", ".secret-key", "app.db", ".venv", ".git")

VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
ENV_LINE = re.compile(r"^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


# --- Reading the files ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@cache
def instructions() -> tuple[Instruction, ...]:
    """docker/Dockerfile's instructions, continuation lines joined and comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(DOCKERFILE.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        keyword, _, args = " ".join([*pending, stripped]).partition(" ")
        pending = []
        found.append(Instruction(start, keyword.upper(), args.strip()))
    return tuple(found)


def final_stage() -> list[Instruction]:
    every = list(instructions())
    starts = [n for n, ins in enumerate(every) if ins.keyword == "FROM"]
    assert starts, "docker/Dockerfile has no FROM instruction"
    return every[starts[-1] :]


def copied_from_context() -> list[tuple[Instruction, str]]:
    """Each source that a COPY or ADD takes from the build context (not ``--from=``)."""
    sources: list[tuple[Instruction, str]] = []
    for ins in instructions():
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        if ins.args.startswith("["):
            words, flags = [str(word) for word in json.loads(ins.args)], []
        else:
            split = shlex.split(ins.args)
            flags = [word for word in split if word.startswith("--")]
            words = [word for word in split if not word.startswith("--")]
        if not any(flag.startswith("--from=") for flag in flags):
            sources += [(ins, posixpath.normpath(src).lstrip("/")) for src in words[:-1]]
    return sources


Rules = tuple[tuple[tuple[str, ...], bool], ...]


def parse_dockerignore(text: str) -> Rules:
    """A .dockerignore as (pattern segments, is a ``!`` exception), in file order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
            rules.append((tuple(pattern.split("/")), line.startswith("!")))
    return tuple(rules)


@cache
def dockerignore() -> Rules:
    return parse_dockerignore(DOCKERIGNORE.read_text(encoding="utf-8"))


def _segments_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_segments_match(rest, path[n:]) for n in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], head) and _segments_match(rest, path[1:])


def excluded(relative: str, rules: Rules | None = None) -> bool:
    """Whether .dockerignore (or ``rules``) leaves ``relative``, a path from the root, out
    of the build context.

    A simple reading of Docker's rule, enough for the patterns this project writes: each
    pattern is matched from the context root, one path segment at a time (shell wildcards
    within a segment, ``**`` for any number of segments), against the path and each of its
    parent folders; the last pattern that matches decides, and ``!`` puts a path back in.
    """
    parts = tuple(relative.split("/"))
    result = False
    for pattern, exception in dockerignore() if rules is None else rules:
        if any(_segments_match(pattern, parts[:n]) for n in range(1, len(parts) + 1)):
            result = not exception
    return result


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker/compose.yaml is not a mapping"
    return document


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict), "docker/compose.yaml has no `services` mapping"
    return {str(name): spec for name, spec in found.items() if isinstance(spec, dict)}


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """depends_on in its long form, whichever form the file uses."""
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {str(name): {"condition": "service_started"} for name in value}
    return {str(name): dict(spec or {}) for name, spec in value.items()}


def strings(node: object) -> list[str]:
    """Every string of a YAML document, mapping keys included."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in strings(key) + strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in strings(item)]
    return []


def fixed_host_port(port: object) -> str | None:
    """The single host port that a ``ports`` entry pins, if it pins one."""
    if isinstance(port, dict):
        published = str(port.get("published") or "").strip()
        return published if published and "-" not in published else None
    if isinstance(port, int):
        return None
    # Variables first (`${API_BIND:-127.0.0.1}` holds colons), then [ip:]host:container.
    spec = re.sub(r"\$\{[^}]*\}", "VAR", str(port)).rsplit("/", 1)[0]
    if spec.startswith("["):  # [ipv6]:host:container
        spec = "ip:" + spec.split("]:", 1)[-1]
    parts = spec.split(":")
    host = parts[-2] if len(parts) > 1 else ""
    return host if host and "-" not in host else None


@cache
def env_example() -> tuple[dict[str, str], tuple[str, ...]]:
    """The variables .env.example shows (the first value of each) and the lines that set
    one (not commented out)."""
    shown: dict[str, str] = {}
    setting: list[str] = []
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, raw in enumerate(lines, 1):
        found = ENV_LINE.match(raw.strip())
        if found:
            commented, name, value = found.groups()
            shown.setdefault(name, value.strip())
            if not commented:
                setting.append(f"line {number}: {raw.strip()}")
    return shown, tuple(setting)


def settings_variables() -> dict[str, str]:
    """Each Settings field by the environment variable that sets it."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    variables = {}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        variables[name] = (alias or prefix + name).upper()
    return variables


# --- The .dockerignore reader itself ---------------------------------------------------


READER_EXAMPLE = """
# comment
tests
**/__pycache__
**/*.py[cod]
**/.env
**/.env.*
!.env.example
/build
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests", True),
        ("tests/unit/test_model.py", True),
        ("application/tests.py", False),
        ("application/tests/x.py", False),
        ("__pycache__/a.pyc", True),
        ("domain/__pycache__/model.cpython-311.pyc", True),
        ("domain/model.pyc", True),
        ("domain/model.py", False),
        (".env", True),
        ("deploy/.env", True),
        (".env.production", True),
        (".env.example", False),
        ("build/lib/x.py", True),
        ("comment", False),
    ],
)
def test_the_dockerignore_reader_reads_patterns_as_docker_does(path: str, expected: bool) -> None:
    rules = parse_dockerignore(READER_EXAMPLE)
    assert excluded(path, rules) is expected, f"the .dockerignore reader gets {path} wrong"


# --- docker/Dockerfile ------------------------------------------------------------------


def test_the_dockerfile_is_a_multi_stage_build() -> None:
    stages = [ins for ins in instructions() if ins.keyword == "FROM"]
    assert len(stages) >= 2, (
        f"docker/Dockerfile has {len(stages)} FROM: expected a builder and a final stage"
    )


def test_every_source_the_dockerfile_copies_exists() -> None:
    missing = [
        f"line {ins.line}: {ins.keyword} {source}"
        for ins, source in copied_from_context()
        if not (ROOT / source).exists()
    ]
    assert not missing, f"docker/Dockerfile copies what the build context lacks: {missing}"


def test_dockerignore_excludes_nothing_the_dockerfile_copies() -> None:
    left_out = []
    for ins, source in copied_from_context():
        path = ROOT / source
        inside = sorted(path.rglob("*")) if path.is_dir() else []
        files = [source] + [
            inner.relative_to(ROOT).as_posix()
            for inner in inside
            if inner.is_file() and "__pycache__" not in inner.parts
        ]
        left_out += [f"line {ins.line}: {f}" for f in files if excluded(f)]
    assert not left_out, f".dockerignore leaves out what docker/Dockerfile copies: {left_out}"


def test_the_dockerfile_copies_every_package_and_runtime_file() -> None:
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]
    packages = {name.split(".")[0].rstrip("*") for name in find.get("include", [])}
    copied = {source for _, source in copied_from_context()}
    missing = sorted((packages | set(RUNTIME_FILES)) - copied)
    assert not missing, f"docker/Dockerfile never copies {missing} into the image"


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    users = [ins.args.split(":")[0] for ins in final_stage() if ins.keyword == "USER"]
    assert users, "the final stage of docker/Dockerfile has no USER: it would run as root"
    assert users[-1] not in {"root", "0"}, f"the final stage's last USER is {users[-1]}"


def test_the_final_stage_has_a_healthcheck() -> None:
    # hadolint has no rule for a missing HEALTHCHECK (see .hadolint.yaml).
    checks = [ins for ins in final_stage() if ins.keyword == "HEALTHCHECK"]
    assert checks, "the final stage of docker/Dockerfile has no HEALTHCHECK"
    assert checks[-1].args.split()[0].upper() != "NONE", "the final stage's HEALTHCHECK is NONE"


def test_the_final_stage_exposes_port_8000() -> None:
    exposed = [
        port for ins in final_stage() if ins.keyword == "EXPOSE" for port in ins.args.split()
    ]
    assert any(port.split("/")[0] == "8000" for port in exposed), (
        f"the final stage of docker/Dockerfile exposes {exposed}, not 8000 (the API's port)"
    )


def test_the_version_label_is_pyprojects_version() -> None:
    version = pyproject()["project"]["version"]
    args = [
        ins for ins in instructions() if ins.keyword == "ARG" and ins.args.startswith("VERSION=")
    ]
    assert args, "docker/Dockerfile has no `ARG VERSION=…` for the image's version label"
    shown = args[0].args.removeprefix("VERSION=").strip("\"'")
    assert shown == version, (
        f"docker/Dockerfile line {args[0].line}: ARG VERSION={shown},"
        f" but pyproject.toml's version is {version}"
    )


# --- .dockerignore ----------------------------------------------------------------------


@pytest.mark.parametrize("path", KEPT_OUT)
def test_dockerignore_keeps_secrets_and_local_state_out(path: str) -> None:
    assert excluded(path), f".dockerignore does not keep {path} out of the build context"


def test_dockerignore_keeps_the_env_example_in() -> None:
    assert not excluded(".env.example"), ".dockerignore excludes .env.example"


# --- docker/compose.yaml -------------------------------------------------------------------


def test_compose_has_the_five_services() -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services()]
    assert not missing, f"docker/compose.yaml lacks the services {missing}"


def test_every_compose_dependency_is_a_service() -> None:
    unknown = [
        f"services.{name}.depends_on: {target}"
        for name, service in services().items()
        for target in depends_on(service)
        if target not in services()
    ]
    assert not unknown, f"docker/compose.yaml depends on services it lacks: {unknown}"


def test_the_app_services_share_one_image_and_build() -> None:
    shapes = {
        name: (service.get("image"), service.get("build"))
        for name, service in services().items()
        if name in APP_SERVICES
    }
    assert len({json.dumps(shape, sort_keys=True) for shape in shapes.values()}) == 1, (
        f"migrate, api and jobs must share one image and build (the x-app anchor): {shapes}"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_builds_docker_dockerfile_from_the_root(name: str) -> None:
    build = services()[name].get("build")
    assert build is not None, f"services.{name} has no build (docker/Dockerfile)"
    spec = {"context": build} if isinstance(build, str) else dict(build)
    context = (COMPOSE_FILE.parent / str(spec.get("context", "."))).resolve()
    dockerfile = (context / str(spec.get("dockerfile", "Dockerfile"))).resolve()
    assert context == ROOT, f"services.{name}.build.context is {context}, not the repository"
    assert dockerfile == DOCKERFILE, f"services.{name} builds {dockerfile}, not docker/Dockerfile"


@pytest.mark.parametrize("name", SCALABLE_SERVICES)
def test_api_and_jobs_wait_for_a_successful_migrate(name: str) -> None:
    condition = depends_on(services()[name]).get("migrate", {}).get("condition")
    assert condition == "service_completed_successfully", (
        f"services.{name} must depend on migrate with condition:"
        f" service_completed_successfully (it has {condition})"
    )


@pytest.mark.parametrize("name", SCALABLE_SERVICES)
def test_nothing_stops_scaling(name: str) -> None:
    service = services()[name]
    pinned = [port for port in service.get("ports") or [] if fixed_host_port(port) is not None]
    assert not pinned, (
        f"services.{name}.ports {pinned} pin a host port, so `--scale {name}=N` would fail:"
        " publish the container port alone"
    )
    assert "container_name" not in service, (
        f"services.{name}.container_name prevents `--scale {name}=N`"
    )
    assert service.get("network_mode") != "host", (
        f"services.{name}.network_mode: host prevents `--scale {name}=N`"
    )


def test_compose_leaves_no_interpolation_unterminated() -> None:
    unterminated = []
    for text in strings(compose()):
        plain, depth = text.replace("$$", ""), 0
        for n, char in enumerate(plain):
            if char == "{" and n and plain[n - 1] == "$":
                depth += 1
            elif char == "}" and depth:
                depth -= 1
        if depth:
            unterminated.append(text)
    assert not unterminated, f"docker/compose.yaml has unterminated ${{…}} in {unterminated}"


def test_every_variable_compose_interpolates_is_documented() -> None:
    interpolated = {
        braced or bare
        for text in strings(compose())
        for braced, bare in VARIABLE.findall(text.replace("$$", ""))
    }
    shown, _ = env_example()
    undocumented = sorted(interpolated - set(shown))
    assert not undocumented, (
        f"docker/compose.yaml interpolates {undocumented}, which .env.example does not document"
    )


# --- .env.example -----------------------------------------------------------------------


def test_env_example_sets_nothing() -> None:
    _, setting = env_example()
    assert not setting, (
        f".env.example sets {list(setting)}: comment each out (`# NAME=…`) so that copying"
        " the file to .env changes no default"
    )


def test_env_example_documents_every_setting() -> None:
    shown, _ = env_example()
    missing = sorted(set(settings_variables().values()) - set(shown))
    assert not missing, f".env.example does not document {missing}: add a `# NAME=…` line each"


def test_env_example_shows_each_default() -> None:
    shown, _ = env_example()
    wrong = []
    for name, variable in settings_variables().items():
        info = Settings.model_fields[name]
        if variable not in shown or info.is_required() or info.annotation is None:
            continue  # the test above reports it
        default = info.get_default(call_default_factory=True)
        if default is None:  # unset by default: the line shows an example
            continue
        text = shown[variable]
        try:
            raw: object = json.loads(text) if text.startswith(("[", "{")) else text
            value = TypeAdapter(info.annotation).validate_python(raw)
        except (ValueError, ValidationError):
            value = text
        if value != default:
            wrong.append(f"{variable} shows {text!r}, but its default is {default!r}")
    assert not wrong, f".env.example: {wrong}"
