"""`python -m benchmarks` (`make bench`): run every benchmark module's `main()` in turn."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

import benchmarks


def run_all() -> None:
    for module_info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{module_info.name}")
        print(f"== {module_info.name}")
        asyncio.run(module.main())


if __name__ == "__main__":
    run_all()
