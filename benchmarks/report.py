"""The results of a run: markdown tables, a PNG chart, a JSON of raw figures, the targets."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.odm import SINGLE_TASKS, TASKS, TaskResult
from benchmarks.tenancy import TenancyFigures
from benchmarks.timing import median

ODMANTIC_NOTE = (
    "ODMantic is not in the run: odmantic 1.1.0 (the latest) requires motor, the deprecated "
    "Motor driver, and its AIOEngine is written against it; it does not run on PyMongo's "
    "native async API this layer (and Beanie 2) use."
)
MODELS = ("shared", "pro", "enterprise")
FLOOR_TARGET = 1.15  # single documents: at most this much the typed floor's CPU per op


def _per_iteration_ratios(mine: TaskResult, base: TaskResult) -> list[float]:
    """`mine`'s CPU per op over `base`'s in each iteration (none unless the iterations pair)."""
    if len(mine.samples) != len(base.samples):
        return []
    return [
        (a.cpu / a.ops) / (b.cpu / b.ops)
        for a, b in zip(mine.samples, base.samples, strict=True)
        if b.cpu > 0
    ]


@dataclass
class Target:
    """One target of issue 16 and how the run did against it."""

    name: str
    met: bool
    detail: str


@dataclass
class Report:
    """Everything a run measured."""

    profile: str
    machine: dict[str, Any]
    server: dict[str, Any]
    versions: dict[str, str]
    odm: dict[tuple[str, str], TaskResult] = field(default_factory=dict)
    odm_sizes: dict[str, int] = field(default_factory=dict)
    tenancy: TenancyFigures | None = None
    timeouts: dict[str, dict[str, float]] = field(default_factory=dict)
    micro: dict[str, float] = field(default_factory=dict)
    # family ("repo", "beanie api") -> its worst cell above the floor target, profiled
    gaps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    # -- figures ---------------------------------------------------------------------

    def contenders(self) -> list[str]:
        seen: list[str] = []
        for _, side in self.odm:
            if side not in seen:
                seen.append(side)
        return seen

    def cpu(self, task: str, side: str) -> float | None:
        result = self.odm.get((task, side))
        return None if result is None else result.cpu_us_per_op

    def ratio(self, task: str, side: str, base: str) -> float | None:
        """`side`'s CPU per op over `base`'s: the median of their ratios iteration by iteration.

        The contenders of an iteration take turns operation by operation, so they share the
        host's speed of the moment; a ratio per iteration cancels it out. A bulk read (one
        long read each), and results without one sample per iteration each, compare their
        figures (`OdmRun.results`: the fastest bulk read, else the median).
        """
        mine, theirs = self.odm.get((task, side)), self.odm.get((task, base))
        if mine is None or theirs is None or not theirs.cpu_us_per_op:
            return None
        paired = _per_iteration_ratios(mine, theirs) if task in SINGLE_TASKS else []
        return median(paired) if paired else mine.cpu_us_per_op / theirs.cpu_us_per_op

    def noise(self) -> float | None:
        """How far a ratio of code that did not change moved between iterations, as +/-.

        The typed floor's ratio to raw PyMongo, iteration by iteration: half its range over
        its median, the median of that over the single-document tasks. Any ratio in the run
        moves about as much (a 2-CPU host shares them with the server, at a varying speed).
        """
        spreads = []
        for task in SINGLE_TASKS:
            raw, floor = self.odm.get((task, "raw")), self.odm.get((task, "typed floor"))
            paired = [] if raw is None or floor is None else _per_iteration_ratios(floor, raw)
            if len(paired) > 1 and median(paired) > 0:
                spreads.append((max(paired) - min(paired)) / 2 / median(paired))
        return median(spreads) if spreads else None

    def targets(self) -> list[Target]:
        out: list[Target] = []
        if self.odm:
            out += self._odm_targets()
        out += self._tenancy_targets()
        return out

    def _ours(self) -> list[str]:
        ours = [s for s in self.contenders() if s.startswith(("repo, ", "beanie api, "))]
        return [s for s in ours if s not in ("repo, tenancy off", "repo, shared, find() pages")]

    def worst_vs_floor(self) -> dict[str, tuple[float, str, str]]:
        """Per family of the layer's contenders: its worst single-document ratio to the floor."""
        out = {}
        ours = self._ours()
        for family in ("repo", "beanie api"):
            cells = [
                (self.ratio(task, side, "typed floor") or 0.0, task, side)
                for task in SINGLE_TASKS
                for side in ours
                if side.startswith(family + ", ")
            ]
            if cells:
                out[family] = max(cells)
        return out

    def _gap_text(self, family: str) -> str:
        gap = self.gaps.get(family)
        if not gap:
            return ""
        lines = ", ".join(
            f"`{line['where']}` +{line['extra_us']:.1f} us ({line['extra_calls']:+.0f} calls)"
            for line in gap["lines"]
        )
        return f"; above the floor under cProfile, per op ({gap['task']}, {gap['side']}): {lines}"

    def _odm_targets(self) -> list[Target]:
        out = []
        ours = self._ours()
        worst_beanie = max(
            ((self.ratio(t, s, "beanie") or 0.0, t, s) for t in TASKS for s in ours),
            default=(0.0, "", ""),
        )
        out.append(
            Target(
                "every ODM task, every model: ahead of plain Beanie (CPU/op)",
                worst_beanie[0] < 1.0,
                f"worst {worst_beanie[0]:.2f}x Beanie ({worst_beanie[1]}, {worst_beanie[2]})",
            )
        )
        noise = self.noise()
        for family, (ratio, task, side) in self.worst_vs_floor().items():
            detail = f"worst {ratio:.2f}x ({task}, {side})"
            if ratio > FLOOR_TARGET:
                missed_by = ratio / FLOOR_TARGET - 1
                detail += f": missed by {missed_by:.0%}"
                if noise is not None and missed_by <= noise:
                    detail += f", within this run's noise (+/-{noise:.0%})"
                detail += self._gap_text(family)
            out.append(
                Target(
                    f"single documents within {FLOOR_TARGET}x of the typed floor ({family})",
                    ratio <= FLOOR_TARGET,
                    detail,
                )
            )
        bulk_cells = [
            (ratio, s)
            for s in ours
            if s.startswith("repo") and (ratio := self.ratio("bulk read", s, "raw")) is not None
        ]
        if bulk_cells:  # a run of a subset of tasks may have none
            bulk = max(bulk_cells)
            out.append(
                Target(
                    "bulk typed read (repository) within 2.5x raw (CPU/doc)",
                    bulk[0] <= 2.5,
                    f"worst {bulk[0]:.2f}x raw ({bulk[1]})"
                    + ("" if bulk[0] <= 2.5 else f": missed by {bulk[0] / 2.5 - 1:.0%}"),
                )
            )
        return out

    def _tenancy_targets(self) -> list[Target]:
        out = []
        if self.tenancy is not None:
            t = self.tenancy
            ratio = t.overhead.get("cpu_ratio", 0.0)
            calls = t.overhead.get("calls_ratio")
            out.append(
                Target(
                    "tenancy (scope + routing + guard) adds at most 5% (find by id, CPU/op)",
                    ratio <= 1.05,
                    f"{ratio:.3f}x the same path with tenancy off"
                    + ("" if ratio <= 1.05 else f": missed by {ratio - 1.05:.3f}x")
                    + ("" if calls is None else f" (Python calls: {calls:.3f}x)"),
                )
            )
            sizes = sorted(t.resolve)
            if len(sizes) > 1:
                grow = t.resolve[sizes[-1]]["cold_p50_us"] / t.resolve[sizes[0]]["cold_p50_us"]
                out.append(
                    Target(
                        f"cold resolution at {sizes[-1]:,} tenants within 1.2x of {sizes[0]:,}",
                        grow <= 1.2,
                        f"{grow:.2f}x"
                        + ("" if grow <= 1.2 else f": missed by {grow / 1.2 - 1:.0%}"),
                    )
                )
            sizes = sorted(t.history)
            if len(sizes) > 1:
                grow = t.history[sizes[-1]]["p99_ms"] / t.history[sizes[0]]["p99_ms"]
                out.append(
                    Target(
                        f"history page p99 at {sizes[-1]:,} messages within 1.5x of {sizes[0]:,}",
                        grow <= 1.5,
                        f"{grow:.2f}x"
                        + ("" if grow <= 1.5 else f": missed by {grow / 1.5 - 1:.0%}")
                        + f"; plan {' > '.join(t.history_plan)}",
                    )
                )
        return out

    # -- output ----------------------------------------------------------------------

    def markdown(self) -> str:
        sides = self.contenders()
        lines = [
            f"## Benchmark ({self.profile} profile, {datetime.now(UTC):%Y-%m-%d})",
            "",
            f"Server: {self.server.get('kind')} {self.server.get('buildinfo', '')}; "
            f"Python {self.versions['python']}, PyMongo {self.versions['pymongo']}, "
            f"Beanie {self.versions['beanie']}, pydantic {self.versions['pydantic']}; "
            f"{self.machine['cpus']} CPUs. Run took {self.seconds:.0f} s.",
            "",
            "Client CPU per operation (time.process_time of the benchmark process) / raw "
            "PyMongo async; bulk read per document. In every iteration the contenders take "
            "turns operation by operation; a ratio is the median of its iterations' ratios "
            "(bulk read: of the fastest reads).",
            "",
            "Every contender stores the same documents: the task's fields plus the schema's "
            "standard fields (`tenant_id`, `schema_version`, `created_at`, `updated_at`, `__v`). "
            "`raw` is raw PyMongo doing what the schema asks (the standard fields on a new "
            "document, the tenant in every filter, an update that checks and bumps `__v`); "
            "the typed floor adds pydantic, plain Beanie uses its own API on the same fields. "
            "`raw, task fields only` stores the task's fields alone: what the schema itself "
            "costs, for reference. The baselines' client has the layer's client options "
            "(timeoutMS, the write concern); what the timeout option costs is in the table "
            "per timeout choice below.",
            "",
            "| task | " + " | ".join(sides) + " |",
            "|---" * (len(sides) + 1) + "|",
        ]
        for task in TASKS:
            cells = [self._cell(self.ratio(task, s, "raw")) for s in sides]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        noise = self.noise()
        if noise is not None:
            lines += [
                "",
                f"This run's noise: the typed floor's ratio to raw PyMongo (code that did not "
                f"change) moved +/-{noise:.0%} between iterations (median over the "
                "single-document tasks); any ratio moves about as much.",
            ]
        lines += ["", "The same / plain Beanie:", ""]
        lines += ["| task | " + " | ".join(sides) + " |", "|---" * (len(sides) + 1) + "|"]
        for task in TASKS:
            cells = [self._cell(self.ratio(task, s, "beanie")) for s in sides]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines += ["", "Throughput (ops/s, wall; bulk read: documents/s) and MB/s:", ""]
        lines += ["| task | " + " | ".join(sides) + " |", "|---" * (len(sides) + 1) + "|"]
        for task in TASKS:
            cells = []
            for s in sides:
                r = self.odm.get((task, s))
                if r is None:
                    cells.append("")
                elif r.mb_per_s is None:
                    cells.append(f"{r.ops_per_s:,.0f}")
                else:
                    cells.append(f"{r.ops_per_s:,.0f} ({r.mb_per_s:.1f} MB/s)")
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines += ["", ODMANTIC_NOTE, ""]
        if self.micro:
            lines += ["Client-side cost of hot steps (us CPU per call, no server):", ""]
            lines += [f"- {name}: {value:.2f}" for name, value in self.micro.items()]
            lines.append("")
        if self.timeouts:
            lines += ["Client CPU us/op of the repository (shared model) per timeout choice:", ""]
            labels = list(self.timeouts)
            lines += ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
            for task in SINGLE_TASKS:
                cells = [f"{self.timeouts[label].get(task, 0):.0f}" for label in labels]
                lines.append(f"| {task} | " + " | ".join(cells) + " |")
            lines.append("")
        if self.tenancy is not None:
            lines += self._tenancy_lines(self.tenancy)
        lines += ["### Targets (issue 16)", ""]
        for target in self.targets():
            lines.append(f"- {'MET' if target.met else 'MISSED'}: {target.name}: {target.detail}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _cell(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    @staticmethod
    def _tenancy_lines(t: TenancyFigures) -> list[str]:
        lines = ["### Tenancy", ""]
        lines.append(f"- entering a scope of a cached tenant: {t.scope_entry_us:.1f} us CPU")
        if t.overhead:
            lines.append(
                f"- find by id, scope + routing + guard: {t.overhead['on_cpu_us']:.0f} us CPU/op "
                f"against {t.overhead['off_cpu_us']:.0f} us with tenancy off "
                f"({t.overhead['cpu_ratio']:.3f}x CPU, {t.overhead['wall_ratio']:.3f}x wall)"
            )
            if "calls_ratio" in t.overhead:
                lines.append(
                    "- the same, in Python function calls per operation (a count, steadier than "
                    f"time): {t.overhead['on_calls']:.0f} against {t.overhead['off_calls']:.0f} "
                    f"({t.overhead['calls_ratio']:.3f}x)"
                )
        for model, seconds in t.provision.items():
            lines.append(f"- provisioning a {model} tenant: {seconds * 1e3:.0f} ms (median)")
        for size, r in sorted(t.resolve.items()):
            lines.append(
                f"- resolve with {size:,} tenants in the directory: cold p50 "
                f"{r['cold_p50_us']:.0f} us (p99 {r['cold_p99_us']:.0f} us), cached p50 "
                f"{r['cached_p50_us']:.1f} us"
            )
        for size, r in sorted(t.history.items()):
            lines.append(
                f"- history page (50 messages) in a conversation of {size:,}: "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
            )
        if t.history_plan:
            lines.append(f"- history plan on this server: {' > '.join(t.history_plan)}")
        if t.inbox:
            lines.append(
                f"- inbox (20 of 1,000 conversations): p50 {t.inbox['p50_ms']:.2f} ms, "
                f"p99 {t.inbox['p99_ms']:.2f} ms"
            )
        for move in t.moves:
            lines.append(
                f"- a tenant move, {move['from']} -> {move['to']}: {move['documents']:,} documents "
                f"in {move['seconds']:.2f} s ({move['documents_per_s']:,.0f} documents/s), "
                f"write pause {move['write_pause_s']:.2f} s"
            )
        lines.append("")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "when": datetime.now(UTC).isoformat(),
            "seconds": self.seconds,
            "machine": self.machine,
            "server": self.server,
            "versions": self.versions,
            "odm": [
                {
                    "task": task,
                    "contender": side,
                    "ops_per_s": r.ops_per_s,
                    "cpu_us_per_op": r.cpu_us_per_op,
                    "mb_per_s": r.mb_per_s,
                    "ratio_to_raw": self.ratio(task, side, "raw"),
                    "ratio_to_beanie": self.ratio(task, side, "beanie"),
                    "samples": [asdict(s) for s in r.samples],
                }
                for (task, side), r in self.odm.items()
            ],
            "document_bytes": self.odm_sizes,
            "timeouts": self.timeouts,
            "client_costs_us": self.micro,
            "tenancy": None if self.tenancy is None else asdict(self.tenancy),
            "noise": self.noise(),
            "targets": [asdict(t) for t in self.targets()],
            "gaps": self.gaps,
            "odmantic": ODMANTIC_NOTE,
        }

    def chart(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        skip = ("raw", "raw, task fields only", "repo, tenancy off", "repo, shared, find() pages")
        sides = [s for s in self.contenders() if s not in skip]
        fig, ax = plt.subplots(figsize=(13, 5.5))
        width = 0.8 / max(1, len(sides))
        for k, side in enumerate(sides):
            values = [self.ratio(task, side, "raw") or 0.0 for task in TASKS]
            ax.bar([i + k * width for i in range(len(TASKS))], values, width, label=side)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(TASKS))], list(TASKS))
        ax.set_ylabel("client CPU per op / raw PyMongo")
        ax.set_title(f"caas_data vs raw PyMongo, typed floor and Beanie ({self.profile})")
        ax.legend(fontsize=8, ncol=3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.profile}.md").write_text(self.markdown())
        (out / f"{self.profile}.json").write_text(json.dumps(self.as_json(), indent=1, default=str))
        if self.odm:
            self.chart(out / f"{self.profile}.png")
