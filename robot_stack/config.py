"""Hydra composition of the node configs in robot_stack/conf (one way to load config)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent / "conf"


def load_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose conf/<name>.yaml with hydra overrides such as `robot=ur5e` or `robot.safety.max_linear_speed=0.2`."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ValueError(f"bad configuration overrides {list(overrides)} for {name}: {exc}") from exc
    OmegaConf.set_readonly(cfg, True)
    return cfg
