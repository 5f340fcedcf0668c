"""Every code block of README.md runs, so the documentation cannot drift from the code.

How a block is treated depends on its fence language and on an optional marker, an HTML
comment on the line just above the fence (invisible on GitHub):

- ```python: a complete program, run with this interpreter in a fresh directory against the
  test server (`CAAS_MONGODB_URI`, `CAAS_DATABASE_PREFIX` of its own), exit 0 expected.
- ```bash / ```sh: run with `bash -eo pipefail`, the same environment, exit 0 expected.
- `<!-- readme-test: group=NAME -->`: blocks of one group share a directory and run in README
  order; `file=PATH` writes the block there instead of running it (any language), so a later
  block of the group can import it or run pytest on it. All files are written first.
- `servers=2`: the group also gets a second server, `CAAS_SECOND_MONGODB_URI` (clusters).
- ```console / ```text: a transcript, not run; it needs `<!-- readme-test: transcript: why -->`.

Anything else (an unknown language, a transcript without its reason, an unknown marker) fails
`test_every_readme_block_is_marked`, so no block is skipped silently. A failing block is
reported with its README line, so a merge that breaks one names it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient

from caas_data.testing import RestartableServer, ServerHandle, new_prefix

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUN_LANGUAGES = {
    "python": [sys.executable],
    "bash": ["bash", "-eo", "pipefail"],
    "sh": ["sh", "-e"],
}
TRANSCRIPT_LANGUAGES = {"console", "text"}
STEP_TIMEOUT_S = 180
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str = ""
    group: str = ""
    file: str = ""
    servers: str = "1"
    transcript: str = ""

    @property
    def where(self) -> str:
        return f"README.md line {self.line} ({self.language or 'no language'})"


@dataclass
class Outcome:
    group: str
    seconds: float
    failures: list[str] = field(default_factory=list)


def parse_blocks(text: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of `text` with their markers, and what is wrong with them."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start = index
        end = start + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            problems.append(f"README.md line {start + 1}: the block is never closed")
            break
        block = Block(start + 1, opening.group(1), "\n".join(lines[start + 1 : end]) + "\n")
        above = lines[start - 1].strip() if start > 0 else ""
        marker = _MARKER.match(above)
        if marker is not None:
            block.marker = marker.group(1)
        problem = _classify(block)
        if problem:
            problems.append(f"{block.where}: {problem}")
        blocks.append(block)
        index = end + 1
    return blocks, problems


def _classify(block: Block) -> str:
    """Fill the block's group/file/transcript from its marker; the problem, if any."""
    if block.marker.startswith("transcript:"):
        block.transcript = block.marker.removeprefix("transcript:").strip()
        if block.language not in TRANSCRIPT_LANGUAGES:
            return f"a transcript must be ```console or ```text, not ```{block.language}"
        return "" if block.transcript else "a transcript needs its reason after 'transcript:'"
    for token in shlex.split(block.marker):
        key, _, value = token.partition("=")
        if key not in ("group", "file", "servers") or not value:
            return f"unknown marker {token!r} (group=, file=, servers=2 or transcript: why)"
        setattr(block, key, value)
    block.group = block.group or f"line{block.line}"
    if block.language in TRANSCRIPT_LANGUAGES:
        return "a transcript needs <!-- readme-test: transcript: why it is not run -->"
    if not block.file and block.language not in RUN_LANGUAGES:
        return (
            f"```{block.language or '(none)'} is neither run nor a transcript: use python, "
            "bash, a file=PATH marker, or console/text with a transcript marker"
        )
    if block.servers not in ("1", "2"):
        return f"servers={block.servers}: one or two servers"
    if block.file and (block.file.startswith("/") or ".." in Path(block.file).parts):
        return f"file={block.file} must be a relative path inside the group's directory"
    return ""


def _environment(uri: str, second_uri: str | None, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CAAS_"))}
    if second_uri is not None:
        env["CAAS_SECOND_MONGODB_URI"] = second_uri
    env.update(
        CAAS_MONGODB_URI=uri,
        CAAS_DATABASE_PREFIX=prefix,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


def _run_group(name: str, blocks: list[Block], directory: Path, env: dict[str, str]) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(name, 0.0)
    directory.mkdir(parents=True)
    for block in blocks:
        if block.file:
            target = directory / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
    for block in blocks:
        if block.file:
            continue
        script = (
            directory / f"readme_line{block.line}.{'py' if block.language == 'python' else 'sh'}"
        )
        script.write_text(block.code)
        command = [*RUN_LANGUAGES[block.language], str(script)]
        try:
            done = subprocess.run(
                command,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            outcome.failures.append(f"{block.where}, group {name}: no exit in {exc.timeout} s")
            break
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            outcome.failures.append(
                f"{block.where}, group {name}: exit {done.returncode} (line n of "
                f"{script.name} is README line {block.line}+n)\n{tail}"
            )
            break  # later blocks of the group build on this one
    outcome.seconds = time.monotonic() - started
    return outcome


def _drop_databases(uri: str, prefixes: list[str]) -> None:
    client: MongoClient[dict[str, object]] = MongoClient(uri)
    try:
        for name in client.list_database_names():
            if any(name.startswith(prefix + "_") for prefix in prefixes):
                client.drop_database(name)
    finally:
        client.close()


@contextmanager
def _second_server(wanted: bool, directory: Path) -> Iterator[str | None]:
    """Another embedded server for the blocks about clusters (never the first one again)."""
    if not wanted:
        yield None
        return
    server = RestartableServer(directory, sync_on_commit=False)
    server.start()
    try:
        yield server.uri
    finally:
        server.close()


def test_every_readme_block_is_marked() -> None:
    blocks, problems = parse_blocks(README.read_text())
    assert blocks, "README.md has no code blocks?"
    assert not problems, "README blocks that would not be checked:\n" + "\n".join(problems)


def test_the_parser_refuses_what_it_cannot_check() -> None:
    text = "\n".join(
        [
            "```js",
            "x()",
            "```",
            "```console",
            "$ make",
            "```",
            "<!-- readme-test: transcript: -->",
            "```text",
            "out",
            "```",
            "<!-- readme-test: colour=red -->",
            "```python",
            "pass",
            "```",
            "<!-- readme-test: transcript: starts a server -->",
            "```console",
            "$ serve",
            "```",
        ]
    )
    _, problems = parse_blocks(text)
    assert [p.split(":")[0] for p in problems] == [
        "README.md line 1 (js)",
        "README.md line 4 (console)",
        "README.md line 8 (text)",
        "README.md line 12 (python)",
    ]


def test_readme_blocks_run(caas_server: ServerHandle, tmp_path: Path) -> None:
    blocks, problems = parse_blocks(README.read_text())
    assert not problems, "\n".join(problems)
    groups: dict[str, list[Block]] = {}
    for block in blocks:
        if not block.transcript:
            groups.setdefault(block.group, []).append(block)
    prefixes = {name: new_prefix() for name in groups}
    two = {name for name, members in groups.items() if any(b.servers == "2" for b in members)}
    started = time.monotonic()
    with _second_server(bool(two), tmp_path / "second-server") as second_uri:
        try:
            with ThreadPoolExecutor(max_workers=min(6, len(groups))) as pool:
                futures = [
                    pool.submit(
                        _run_group,
                        name,
                        members,
                        tmp_path / name,
                        _environment(
                            caas_server.uri, second_uri if name in two else None, prefixes[name]
                        ),
                    )
                    for name, members in groups.items()
                ]
                outcomes = [future.result() for future in futures]
        finally:
            _drop_databases(caas_server.uri, list(prefixes.values()))
    took = time.monotonic() - started
    print(f"\nREADME: {len(groups)} groups in {took:.1f} s wall")
    for outcome in sorted(outcomes, key=lambda o: -o.seconds):
        print(f"  {outcome.group}: {outcome.seconds:.1f} s")
    failures = [failure for outcome in outcomes for failure in outcome.failures]
    assert not failures, "README blocks that failed:\n\n" + "\n\n".join(failures)
