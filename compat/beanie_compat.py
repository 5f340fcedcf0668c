"""Run Beanie's own ODM test suite on caas_data's tenant base and list the regressions.

usage: python compat/beanie_compat.py [--model free|starter|pro|enterprise|plain]
                                      [--tests DIR] [--report DIR] [--uri URI] [--rerun-plain]
                                      [PYTEST_ARGS...]

`--tests` (env BEANIE_TESTS, default ../shared/peers/beanie, looked up from the checkout
upwards) is a folder holding Beanie's `tests/` and `pyproject.toml`, or a git checkout of
BeanieODM/beanie. The suite runs twice on
the same server: as plain Beanie (cached in the report folder; `--rerun-plain` repeats it) and
with `beanie.Document` rebased on `TenantDocument` inside a tenant scope of `--model` (env
COMPAT_MODEL, default free), through `compat/caas_beanie_shim.py`. Prints both counts and
every test that passes on plain Beanie but not on ours; writes them to
`<report>/regressions-<model>.txt`. Exits 1 when a regression is not listed, with its
reason, in `compat/known_differences.txt`.

Preparation, as Beanie's CI does it minus coverage: text indexes become ascending ones (the
embedded server has no `$text`). The server is `--uri`, else `CAAS_MONGODB_URI`, else one
started by `caas_data.testing` (embedded SecantusDB, `retryWrites=false`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIM = Path(__file__).resolve().parent / "caas_beanie_shim.py"
MODELS = ("plain", "free", "starter", "pro", "enterprise")
# Tests that differ on purpose (README, "Differences from Beanie") or by a known open gap:
# `test id  # reason`, one a line. Only a regression not listed fails the run.
KNOWN = Path(__file__).resolve().parent / "known_differences.txt"


def _known_differences() -> dict[str, str]:
    """Test id -> why it differs, from KNOWN."""
    known: dict[str, str] = {}
    if KNOWN.exists():
        for line in KNOWN.read_text().splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                known[name.strip()] = reason.strip()
    return known


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


def main() -> int:
    """Entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("COMPAT_MODEL", "free"), choices=MODELS)
    parser.add_argument("--tests", default=os.environ.get("BEANIE_TESTS") or _default_tests())
    parser.add_argument("--report", default=os.environ.get("COMPAT_REPORT", str(REPO / ".compat")))
    parser.add_argument("--uri", default=os.environ.get("CAAS_MONGODB_URI"))
    parser.add_argument("--rerun-plain", action="store_true")
    args, pytest_args = parser.parse_known_args()
    source = Path(args.tests).resolve()
    if not (source / "tests").is_dir() and not (source / ".git").exists():
        parser.error(f"no Beanie tests in {source} (set BEANIE_TESTS)")
    report = Path(args.report)
    server = None
    uri = args.uri
    if not uri:
        from caas_data.testing import start_test_server

        server = start_test_server()
        uri = server.handle.uri
    try:
        plain_junit = report / "junit-plain.xml"
        if args.model == "plain" or args.rerun_plain or not plain_junit.exists():
            plain_junit = run_suite(source, "plain", uri, report, pytest_args)
        if args.model == "plain":
            print("plain:", _counts(outcomes(plain_junit)))
            return 0
        ours_junit = run_suite(source, args.model, uri, report, pytest_args)
    finally:
        if server is not None:
            server.stop()
    plain, ours = outcomes(plain_junit), outcomes(ours_junit)
    regressions = sorted(
        name for name, status in plain.items() if status == "passed" and ours.get(name) != "passed"
    )
    fixed = sorted(n for n, s in ours.items() if s == "passed" and plain.get(n) != "passed")
    print(f"plain: {_counts(plain)}")
    print(f"{args.model}: {_counts(ours)}")
    known = _known_differences()
    unexpected = [n for n in regressions if n not in known]
    print(f"pass on plain Beanie, not on {args.model}: {len(regressions)}")
    for name in regressions:
        reason = f" [known: {known[name]}]" if name in known else ""
        print(f"  {name} ({ours.get(name, 'missing')}){reason}")
    stale = sorted(n for n in known if n in plain and n not in regressions)
    if stale:
        print(f"listed in {KNOWN.name} but no longer different: {len(stale)}")
        for name in stale:
            print(f"  {name}")
    if fixed:
        print(f"pass on {args.model} only: {len(fixed)}")
    print(f"unexpected (not in {KNOWN.name}): {len(unexpected)}")
    (report / f"regressions-{args.model}.txt").write_text("".join(f"{n}\n" for n in regressions))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
