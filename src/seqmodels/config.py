"""Where configs live and what the defaults resolve against."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

# src/seqmodels/config.py -> the checkout (the package is installed editable, see Makefile)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"


def register_resolvers() -> None:
    """`${project_root:}` lets configs default to folders of the checkout (data/, .cache/)
    rather than Hydra's per-run directory."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
