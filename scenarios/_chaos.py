"""Where a scenario's own chaos profile lives: ``scenarios/profiles/<name>.toml``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["profile", "PROFILES"]

PROFILES = Path(__file__).resolve().parent / "profiles"


def profile(name: str) -> str:
    """The path of profile `name`, as `Scenario.default_chaos` wants it.

    Relative to the working directory when the file lies below it, else
    absolute: a run from the checkout then records the same chaos spec --
    and so the same trace fingerprint -- on every machine, and a run from
    anywhere else still finds the file."""
    path = PROFILES / f"{name}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"no chaos profile {path}; add it under scenarios/profiles/")
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
