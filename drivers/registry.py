"""Arm drivers by name, LeRobot style: each is a config dataclass plus an `ArmDriver` class.

A driver package registers itself where it is defined:

    @register_arm_driver("franka", FrankaConfig)
    class FrankaDriver(ArmDriver): ...

and `make_arm_driver("franka", cfg, clock)` builds it from the arm node's config. The
config class maps that config with `from_node_config(cfg)`; the driver class is built as
`driver_cls(config, clock=clock)`. A name that is not registered yet is looked up as the
package `robot_stack.drivers.<name>` and imported then, so a node imports only the driver
it runs (the Franka node never loads the simulator) and a new driver is one new folder.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass
from typing import Any, Callable

from robot_stack.drivers.base import ArmDriver

PACKAGE = __name__.rpartition(".")[0]       # robot_stack.drivers


@dataclass(frozen=True)
class ArmDriverEntry:
    name: str
    config_cls: type
    driver_cls: type[ArmDriver]


_ARM_DRIVERS: dict[str, ArmDriverEntry] = {}


def register_arm_driver(name: str, config_cls: type) -> Callable[[type[ArmDriver]], type[ArmDriver]]:
    """Class decorator: make `driver_cls` available as `name`, configured by `config_cls`."""
    if not callable(getattr(config_cls, "from_node_config", None)):
        raise TypeError(f"arm driver {name!r}: {config_cls.__name__} needs a from_node_config(cfg) classmethod")

    def register(driver_cls: type[ArmDriver]) -> type[ArmDriver]:
        if not (isinstance(driver_cls, type) and issubclass(driver_cls, ArmDriver)):
            raise TypeError(f"arm driver {name!r}: {driver_cls!r} is not an ArmDriver")
        known = _ARM_DRIVERS.get(name)
        # A module imported twice (a re-import in a test, an interactive reload) re-registers its own
        # class under its own name; two different classes under one name is a mistake to report.
        if known is not None and _where(known.driver_cls) != _where(driver_cls):
            raise ValueError(f"arm driver {name!r} is already registered by {_where(known.driver_cls)}")
        _ARM_DRIVERS[name] = ArmDriverEntry(name, config_cls, driver_cls)
        return driver_cls

    return register


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def arm_driver(name: str) -> ArmDriverEntry:
    """The registered entry for `name`, importing `robot_stack.drivers.<name>` first if need be."""
    if name not in _ARM_DRIVERS and name.isidentifier():
        module = f"{PACKAGE}.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:            # the package exists but needs something missing: say that
                raise
    try:
        return _ARM_DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown arm driver {name!r}; valid drivers: {', '.join(arm_driver_names())}") from None


def arm_driver_names() -> list[str]:
    """Every arm driver the installed driver packages register (imports them all: for listings and errors)."""
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            importlib.import_module(f"{PACKAGE}.{info.name}")
    return sorted(_ARM_DRIVERS)


def make_arm_driver(name: str, cfg: Any, clock: Callable[[], float] = time.time) -> ArmDriver:
    """The driver `name`, configured from the arm node's config `cfg`, stamping with `clock`."""
    entry = arm_driver(name)
    return entry.driver_cls(entry.config_cls.from_node_config(cfg), clock=clock)
