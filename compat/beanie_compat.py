"""Run Beanie's own ODM test suite on caas_data's tenant base and list the regressions.

usage: python compat/beanie_compat.py [--model free|starter|pro|enterprise|plain|all|LIST]
                                      [--tests DIR] [--report DIR] [--uri URI] [--rerun-plain]
                                      [PYTEST_ARGS...]

`--tests` (env BEANIE_TESTS, default ../shared/peers/beanie, looked up from the checkout
upwards) is a folder holding Beanie's `tests/` and `pyproject.toml`, or a git checkout of
BeanieODM/beanie. The suite runs twice on
the same server: as plain Beanie (cached in the report folder; `--rerun-plain` repeats it) and
with `beanie.Document` rebased on `TenantDocument` inside a tenant scope of `--model` (env
COMPAT_MODEL, default free; `all` runs free, pro and enterprise one after the other on one
server, as does a list such as `free,pro`), through `compat/caas_beanie_shim.py`. Prints both
counts and every test that passes on plain Beanie but not on ours; writes them to
`<report>/regressions-<model>.txt`. Exits 1 when a regression is not listed, with its reason,
in `compat/known_differences.txt`.

The plain run is cached in the report folder with a fingerprint of the suite and of the
installed Beanie and PyMongo; it is repeated only when one of them changes (or with
`--rerun-plain`), so a run costs one suite per model.

Preparation, as Beanie's CI does it minus coverage: text indexes become ascending ones (the
embedded server has no `$text`). The server is `--uri`, else `CAAS_MONGODB_URI`, else one
started by `caas_data.testing` (embedded SecantusDB, `retryWrites=false`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIM = Path(__file__).resolve().parent / "caas_beanie_shim.py"
MODELS = ("plain", "free", "starter", "pro", "enterprise", "all")
ALL_MODELS = ("free", "pro", "enterprise")
# Tests that differ on purpose (README, "Differences from Beanie") or by a known open gap:
# `test id  # difference N: reason` (or `# gap: reason`), one a line, for every model; a line
# `[pro]` (or `[free, enterprise]`...) makes the lines after it apply to those models only, and
# `[all]` ends such a section. Only a regression not listed fails the run.
KNOWN = Path(__file__).resolve().parent / "known_differences.txt"
_REASON = re.compile(r"^(difference \d+|gap)\b")
_SECTION = re.compile(r"^\[([a-z, ]+)\]$")


def _known_differences(model: str) -> dict[str, str]:
    """Test id -> why it differs in `model`, from KNOWN (a line without a reason is an error)."""
    known: dict[str, str] = {}
    if not KNOWN.exists():
        return known
    applies = True
    for number, line in enumerate(KNOWN.read_text().splitlines(), start=1):
        name, _, reason = line.partition("#")
        section = _SECTION.match(name.strip())
        if section:
            models = {m.strip() for m in section.group(1).split(",")}
            applies = "all" in models or model in models
            continue
        if not name.strip():
            continue
        if not _REASON.match(reason.strip()):
            raise SystemExit(
                f"{KNOWN.name}:{number}: say why: '# difference N: ...' or '# gap: ...'"
            )
        if applies:
            known[name.strip()] = reason.strip()
    return known


def _fingerprint(source: Path) -> str:
    """What the plain run depends on: the suite's files and the installed Beanie and PyMongo."""
    digest = hashlib.sha256(f"beanie {version('beanie')} pymongo {version('pymongo')}".encode())
    tests = source / "tests"
    if tests.is_dir():
        for path in sorted(p for p in tests.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(source)).encode())
            digest.update(path.read_bytes())
    else:  # a git checkout: its commit
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout
        digest.update(commit.encode())
    return digest.hexdigest()


def _prepare(source: Path, model: str) -> Path:
    """Copy Beanie's tests into a fresh folder and adapt them for this run."""
    work = Path(tempfile.mkdtemp(prefix="caas-beanie-compat-"))
    if (source / "tests").is_dir():
        shutil.copytree(source / "tests", work / "tests")
        shutil.copy(source / "pyproject.toml", work / "pyproject.toml")
    else:
        archive = subprocess.run(
            ["git", "-C", str(source), "archive", "HEAD", "tests", "pyproject.toml"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    for path in work.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('addopts = ["--cov"]', "addopts = []"))
    models = work / "tests/odm/models.py"
    models.write_text(
        models.read_text()
        .replace("index_type=pymongo.TEXT", "index_type=pymongo.ASCENDING")
        .replace('("s", pymongo.TEXT)', '("s", pymongo.ASCENDING)')
    )
    if model != "plain":
        shutil.copy(SHIM, work / "caas_beanie_shim.py")
        # The shim's `cli`, `init` and `clean_db` replace Beanie's fixtures of the same name.
        with (work / "tests/conftest.py").open("a") as conftest:
            conftest.write("\nfrom caas_beanie_shim import cli  # noqa: E402,F401,F811\n")
        with (work / "tests/odm/conftest.py").open("a") as conftest:
            conftest.write(
                "\nfrom caas_beanie_shim import clean_db, init  # noqa: E402,F401,F811\n"
            )
    return work


def run_suite(source: Path, model: str, uri: str, report: Path, extra: list[str]) -> Path:
    """Run tests/odm for one model; return the junit file."""
    work = _prepare(source, model)
    report.mkdir(parents=True, exist_ok=True)
    junit = report / f"junit-{model}.xml"
    env = dict(os.environ, CAAS_BEANIE_TIER=model, MONGODB_DSN=uri)
    # The repository's caas_data first, whatever is installed in the interpreter.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(work), env.get("PYTHONPATH", "")) if p
    )
    command = [sys.executable, "-m", "pytest", "tests/odm", "-q", "-p", "no:cacheprovider"]
    if model != "plain":
        command += ["-p", "caas_beanie_shim"]
    command += ["--tb=short", "-rfE", f"--junitxml={junit}", *extra]
    log = report / f"pytest-{model}.log"
    with log.open("w") as out:
        subprocess.run(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    shutil.rmtree(work, ignore_errors=True)
    lines = log.read_text().strip().splitlines()
    print(f"{model}: {lines[-1] if lines else '(no output)'}  [{log}]")
    return junit


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed | failed | error | skipped, from a junit file."""
    result: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                break
        result[name] = status
    return result


def _counts(result: dict[str, str]) -> str:
    tally: dict[str, int] = {}
    for status in result.values():
        tally[status] = tally.get(status, 0) + 1
    return ", ".join(f"{count} {status}" for status, count in sorted(tally.items()))


def _default_tests() -> str:
    """`../shared/peers/beanie` beside the checkout (or beside a parent, for worktrees)."""
    for parent in REPO.parents:
        candidate = parent / "shared/peers/beanie"
        if candidate.is_dir():
            return str(candidate)
    return str(REPO.parent / "shared/peers/beanie")


def compare(model: str, plain: dict[str, str], ours: dict[str, str], report: Path) -> int:
    """Print how `model` differs from plain Beanie; return the number of unexpected ones."""
    regressions = sorted(
        name for name, status in plain.items() if status == "passed" and ours.get(name) != "passed"
    )
    fixed = sorted(n for n, s in ours.items() if s == "passed" and plain.get(n) != "passed")
    print(f"plain: {_counts(plain)}")
    print(f"{model}: {_counts(ours)}")
    known = _known_differences(model)
    unexpected = [n for n in regressions if n not in known]
    print(f"pass on plain Beanie, not on {model}: {len(regressions)}")
    for name in regressions:
        reason = f" [known: {known[name]}]" if name in known else ""
        print(f"  {name} ({ours.get(name, 'missing')}){reason}")
    stale = sorted(n for n in known if n in plain and n not in regressions)
    if stale:
        print(f"listed in {KNOWN.name} but no longer different: {len(stale)}")
        for name in stale:
            print(f"  {name}")
    if fixed:
        print(f"pass on {model} only: {len(fixed)}")
    print(f"unexpected (not in {KNOWN.name}): {len(unexpected)}")
    (report / f"regressions-{model}.txt").write_text("".join(f"{n}\n" for n in regressions))
    return len(unexpected)


def main() -> int:
    """Entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("COMPAT_MODEL", "free"))
    parser.add_argument("--tests", default=os.environ.get("BEANIE_TESTS") or _default_tests())
    parser.add_argument("--report", default=os.environ.get("COMPAT_REPORT", str(REPO / ".compat")))
    parser.add_argument("--uri", default=os.environ.get("CAAS_MONGODB_URI"))
    parser.add_argument("--rerun-plain", action="store_true")
    args, pytest_args = parser.parse_known_args()
    source = Path(args.tests).resolve()
    if not (source / "tests").is_dir() and not (source / ".git").exists():
        parser.error(f"no Beanie tests in {source} (set BEANIE_TESTS)")
    models = ALL_MODELS if args.model == "all" else tuple(args.model.split(","))
    if any(m not in MODELS or m == "all" for m in models) or (
        len(models) > 1 and "plain" in models
    ):
        parser.error(f"--model: one of {', '.join(MODELS)}, or a list of models ({args.model!r})")
    for model in models:
        _known_differences(model)  # a malformed list fails before the long runs
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    server = None
    uri = args.uri
    if not uri:
        from caas_data.testing import start_test_server

        server = start_test_server()
        uri = server.handle.uri
    ours: dict[str, Path] = {}
    try:
        plain_junit = report / "junit-plain.xml"
        stamp = report / "plain.fingerprint"
        fingerprint = _fingerprint(source)
        cached = plain_junit.exists() and stamp.exists() and stamp.read_text() == fingerprint
        if args.model == "plain" or args.rerun_plain or not cached or pytest_args:
            plain_junit = run_suite(source, "plain", uri, report, pytest_args)
            stamp.write_text(fingerprint if not pytest_args else "")  # a partial run is no cache
        if args.model == "plain":
            print("plain:", _counts(outcomes(plain_junit)))
            return 0
        for model in models:
            ours[model] = run_suite(source, model, uri, report, pytest_args)
    finally:
        if server is not None:
            server.stop()
    plain = outcomes(plain_junit)
    unexpected = {model: compare(model, plain, outcomes(ours[model]), report) for model in models}
    if len(models) > 1:
        print("unexpected per model: " + ", ".join(f"{m} {n}" for m, n in unexpected.items()))
    return 1 if any(unexpected.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
