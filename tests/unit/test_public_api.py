import importlib

import pytest

import caas_data

MODULES = [
    "caas_data",
    "caas_data.errors",
    "caas_data.config",
    "caas_data.tenancy",
    "caas_data.engine",
    "caas_data.documents",
    "caas_data.repositories",
    "caas_data.testing",
    "caas_data.operations",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_sorted_and_complete(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_every_error_derives_from_the_root() -> None:
    from caas_data import errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, caas_data.CaasDataError), name


def test_validation_errors_are_value_errors() -> None:
    assert issubclass(caas_data.DocumentValidationError, ValueError)
    assert issubclass(caas_data.InvalidTenantId, ValueError)


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("caas_data").joinpath("py.typed").is_file()
