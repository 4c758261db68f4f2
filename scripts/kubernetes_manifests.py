"""deploy/kubernetes, rendered and checked offline (``make lint``; tests/deploy renders it
the same way).

Each overlay is rendered with ``kubectl kustomize`` (kustomize is built into kubectl)
from a copy of deploy/kubernetes in which every overlay's secrets.env is its committed
secrets.env.example: the real one, git-ignored, is never read, so no secret lands in the
output. Then every resource is validated against the API schemas of KUBERNETES_VERSION,
which kubernetes-validate bundles (strict: an unknown field is an error), and checkov's
Kubernetes checks run on the rendered files. Neither needs a cluster or the network.

Without kubectl (or with one whose kustomize is older than v5) nothing is rendered nor
checked, and this says so; with TEST_REQUIRE_KUBECTL=1 (CI) that is a failure.

    python -m scripts.kubernetes_manifests [OUTPUT_DIR]     (build/kubernetes by default)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("development", "production")
# The oldest Kubernetes these manifests are for: its API schemas are the ones checked.
KUBERNETES_VERSION = "1.32.0"
# The manifests use kustomize 5's `labels`, `replacements` and `patches` with a target.
MIN_KUSTOMIZE = (5, 0)
REQUIRE_KUBECTL = "TEST_REQUIRE_KUBECTL"
SECRETS = "secrets.env"
CHECKED = ".checked"
RENDER_TIMEOUT = 60
CHECKOV_TIMEOUT = 300


class KubectlUnavailable(Exception):
    """No kubectl that can render these manifests: the reason, for the operator."""


def kubectl() -> str:
    """The path of a kubectl whose built-in kustomize renders these manifests."""
    found = shutil.which("kubectl")
    if found is None:
        raise KubectlUnavailable("kubectl is not on PATH")
    done = subprocess.run(  # noqa: S603 - kubectl of PATH, fixed arguments
        [found, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT,
        check=False,
    )
    needed = (
        f"deploy/kubernetes needs kustomize {'.'.join(map(str, MIN_KUSTOMIZE))} or newer"
        " (kubectl 1.27 or newer)"
    )
    try:
        kustomize = str(json.loads(done.stdout)["kustomizeVersion"])
    except (ValueError, KeyError, TypeError):
        # kubectl says it from 1.24 on.
        raise KubectlUnavailable(f"{found} is older than 1.24; {needed}") from None
    numbers = re.match(r"v?(\d+)\.(\d+)", kustomize)
    if numbers is None or (int(numbers[1]), int(numbers[2])) < MIN_KUSTOMIZE:
        raise KubectlUnavailable(f"{found} has kustomize {kustomize}; {needed}")
    return found


def render(overlay: str, command: str | None = None) -> str:
    """The overlay's resources, as ``kubectl apply -k`` would send them (one YAML
    stream), with the example secrets."""
    command = command or kubectl()
    with tempfile.TemporaryDirectory(prefix="kubernetes-") as scratch:
        tree = Path(scratch) / "kubernetes"
        shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns(SECRETS))
        for example in tree.glob(f"overlays/*/{SECRETS}.example"):
            shutil.copyfile(example, example.with_name(SECRETS))
        done = subprocess.run(  # noqa: S603 - kubectl, on our own copy of the tree
            [command, "kustomize", str(tree / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {done.stderr.strip()}")
    return done.stdout


def documents(stream: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def schema_errors(resources: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """What the API schemas of ``version`` refuse in ``resources`` (strict)."""
    errors = []
    for resource in resources:
        name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            errors.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    return errors


def checkov(files: list[Path]) -> int:
    """checkov's Kubernetes checks on ``files``: its exit status (0: none failed). A
    check that does not apply is skipped in the manifest, with its reason."""
    command = [str(Path(sys.executable).parent / "checkov"), "--framework", "kubernetes"]
    # --skip-download: no policy metadata from Prisma Cloud; the checks are local.
    command += ["--skip-download", "--quiet", "--compact"]
    for path in files:
        command += ["--file", str(path)]
    done = subprocess.run(command, timeout=CHECKOV_TIMEOUT, check=False)  # noqa: S603 - our venv's
    return done.returncode


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "kubernetes"
    (out / CHECKED).unlink(missing_ok=True)
    try:
        command = kubectl()
    except KubectlUnavailable as exc:
        required = os.environ.get(REQUIRE_KUBECTL) == "1"
        print(
            f"kubernetes: {exc}: deploy/kubernetes is neither rendered nor checked"
            + (f" ({REQUIRE_KUBECTL}=1: a failure)" if required else ""),
            file=sys.stderr,
        )
        return 1 if required else 0
    out.mkdir(parents=True, exist_ok=True)
    files = []
    failed = False
    for overlay in OVERLAYS:
        path = out / f"{overlay}.yaml"
        path.write_text(render(overlay, command))
        files.append(path)
        resources = documents(path.read_text())
        errors = schema_errors(resources)
        for error in errors:
            print(f"kubernetes: {overlay}: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        print(
            f"kubernetes: {overlay}: rendered to {path}; {len(resources)}"
            f" resources, {len(errors)} refused by the Kubernetes {KUBERNETES_VERSION} API"
            " schemas (strict)"
        )
    print(f"kubernetes: checkov --framework kubernetes on {len(files)} files", flush=True)
    failed = checkov(files) != 0 or failed
    if failed:
        return 1
    # For make: checked, and nothing to do again until deploy/ or the checkers change.
    (out / CHECKED).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
