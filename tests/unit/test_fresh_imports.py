"""Every module of caas_data imports first, before any other: no import order hides a cycle."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.unit.test_import_contract import ROOT, module_name


def all_modules() -> list[str]:
    """Every module of caas_data by dotted name (`__main__` runs the CLI: not a library module)."""
    names = (module_name(ROOT, p) for p in (ROOT / "caas_data").rglob("*.py"))
    return sorted(name for name in names if not name.endswith(".__main__"))


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported before any other caas_data module: a cycle would fail here.

    The face (`caas_data/__init__`) is replaced by an empty package, so its import order
    cannot hide a cycle. One subprocess for all, with caas_data's modules dropped from
    `sys.modules` before each, keeps it to seconds.
    """
    script = textwrap.dedent(
        """
        import importlib, sys, traceback, types
        failed = []
        for name in sys.argv[2:]:
            for loaded in [m for m in sys.modules if m.split(".")[0] == "caas_data"]:
                del sys.modules[loaded]
            if name != "caas_data":
                # An empty face: the package's own imports must not decide the order.
                face = types.ModuleType("caas_data")
                face.__path__ = [sys.argv[1]]
                sys.modules["caas_data"] = face
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name + ": " + traceback.format_exc(limit=-2).strip())
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "caas_data"), *all_modules()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
