"""A run says how noisy it was, and a floor target missed by less than that says so.

Cells on a shared 2-CPU host move between runs of the same code; the report measures how far
the typed floor's ratio to raw PyMongo (code that did not change) moved between the run's
iterations and puts it beside the verdict. Ratios pair the contenders iteration by iteration.
"""

from __future__ import annotations

from benchmarks.odm import OdmRun, TaskResult
from benchmarks.report import Report
from benchmarks.timing import Sample


def _result(*cpu_us: float) -> TaskResult:
    samples = [Sample(10, 1.0, us * 10 / 1e6) for us in cpu_us]  # 10 ops per sample
    return TaskResult(1.0, sorted(cpu_us)[len(cpu_us) // 2], None, samples)


def _report(floor_samples: tuple[float, ...], ours: float) -> Report:
    report = Report("unit", {"cpus": 2}, {"kind": "unit"}, dict.fromkeys(
        ("python", "pymongo", "beanie", "pydantic"), "x"))  # fmt: skip
    for task in ("small create", "find by id"):
        report.odm[(task, "raw")] = _result(90.0, 100.0, 110.0)  # +/-10%
        report.odm[(task, "typed floor")] = _result(*floor_samples)
        report.odm[(task, "beanie")] = _result(300.0)
        report.odm[(task, "repo, shared")] = _result(ours)
    return report


def _floor_target(report: Report) -> str:
    (target,) = [t for t in report.targets() if "typed floor (repo)" in t.name]
    assert not target.met
    return target.detail


def test_the_noise_is_the_half_range_of_the_floors_ratio_to_raw_by_iteration() -> None:
    # raw 90/100/110, the floor 72/100/132: ratios 0.8, 1.0, 1.2 -> +/-20%
    report = _report((72.0, 100.0, 132.0), 120.0)
    noise = report.noise()
    assert noise is not None and abs(noise - 0.2) < 1e-9
    assert "moved +/-20% between iterations" in report.markdown()
    assert report.as_json()["noise"] == noise


def test_a_speed_change_shared_by_an_iteration_is_no_noise() -> None:
    report = _report((108.0, 120.0, 132.0), 120.0)  # always 1.2x raw: the host moved both
    noise = report.noise()
    assert noise is not None and noise < 1e-9


def test_a_ratio_is_the_median_of_the_iterations_ratios() -> None:
    report = _report((72.0, 100.0, 132.0), 120.0)
    report.odm[("small create", "repo, pro")] = _result(180.0, 120.0, 121.0)
    # by iteration: 2.0, 1.2, 1.1 -> 1.2 (the ratio of the medians would say 1.21)
    ratio = report.ratio("small create", "repo, pro", "raw")
    assert ratio is not None and abs(ratio - 1.2) < 1e-9
    # a result without one sample per iteration: the ratio of the medians
    assert report.ratio("small create", "beanie", "raw") == 3.0


def test_a_miss_within_the_noise_says_so_and_a_larger_one_does_not() -> None:
    # raw 90/100/110, the floor 100 each time: ratios 1.11, 1.0, 0.91 -> noise +/-10%
    within = _floor_target(_report((100.0, 100.0, 100.0), 120.0))  # 1.20x: missed by 4%
    assert within.startswith("worst 1.20x") and "missed by 4%" in within
    assert "within this run's noise (+/-10%)" in within
    beyond = _floor_target(_report((95.0, 100.0, 105.0), 130.0))  # missed by 13%
    assert "missed by 13%" in beyond and "noise" not in beyond


def test_a_run_of_single_samples_claims_no_noise() -> None:
    report = _report((100.0,), 120.0)
    for task in ("small create", "find by id"):
        report.odm[(task, "raw")] = _result(100.0)
    assert report.noise() is None
    assert "noise" not in report.markdown() and "noise" not in _floor_target(report)


def test_a_bulk_read_counts_its_fastest_read_and_a_single_task_its_median() -> None:
    odm = OdmRun([], ops=10, bulk_docs=100)
    for task, scale in (("bulk read", 100), ("find by id", 10)):
        odm.samples[(task, "raw")] = [Sample(scale, 1.0, us * scale / 1e6) for us in (9, 6, 12)]
        odm.samples[(task, "repo, shared")] = [
            Sample(scale, 1.0, us * scale / 1e6) for us in (24, 12, 20)
        ]
    results = odm.results()
    assert abs(results[("bulk read", "raw")].cpu_us_per_op - 6.0) < 1e-9
    assert abs(results[("find by id", "raw")].cpu_us_per_op - 9.0) < 1e-9
    report = Report("unit", {"cpus": 2}, {"kind": "unit"}, {})
    report.odm = results
    bulk = report.ratio("bulk read", "repo, shared", "raw")
    assert bulk is not None and abs(bulk - 2.0) < 1e-9  # 12 / 6, not the paired 2.67, 2, 1.67
    single = report.ratio("find by id", "repo, shared", "raw")
    assert single is not None and abs(single - 2.0) < 1e-9  # median of 2.67, 2.0, 1.67
