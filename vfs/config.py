"""Configuration: one TOML file, every setting with a default, so no file is needed to start.

Looked up at `--config FILE`, else `STATE/config.toml` (STATE defaults to `LIBRARY/.photovfs`).
Unknown keys are an error: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

STATE_DIRNAME = ".photovfs"


@dataclass
class ViewsConfig:
    enabled: list[str] = field(
        default_factory=lambda: [
            "by-date", "by-person", "by-place", "by-album", "thumbnails", "originals", "inbox", "trash"
        ]
    )
    unknown_date_folder: str = "undated"


@dataclass
class IngestConfig:
    template: str = "{year}/{month}/{day}/{name}"
    quiet_seconds: float = 10.0
    inbox_dir: str = ""  # default: STATE/inbox


@dataclass
class ThumbnailsConfig:
    display_size: int = 1920
    grid_size: int = 256
    view_size: int = 1920  # the size served under thumbnails/
    cache_cap_mb: int = 2048
    memory_mb: int = 64
    workers: int = 2
    max_megapixels: int = 120


@dataclass
class TrashConfig:
    retention_days: int = 30


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    users_file: str = ""  # default: STATE/users.toml


@dataclass
class PeopleConfig:
    min_faces: int = 3


@dataclass
class XmpConfig:
    write_sidecars: bool = True


@dataclass
class BackgroundConfig:
    """Work `serve` and `mount` do on their own (photovfs.background; docs/thumbnails.md)."""

    enabled: bool = True
    renditions: bool = True  # pre-generate thumbnails.view_size renditions of every asset
    faces: bool = True  # detect faces of new photos (only when the `faces` extra is installed)
    face_workers: int = 1
    fixity: bool = True  # re-read originals within a byte budget (backup.engine.check)
    fixity_days: int = 30  # every original is re-read at least once in this many days
    fixity_interval_hours: float = 24.0
    poll_seconds: float = 30.0  # how often the catalog is looked at for changes
    backup_debounce_seconds: float = 300.0  # quiet time after an ingest before a backup runs


@dataclass
class BackupConfig:
    max_change: float = 0.20  # the mass-change guard for scheduled backups


@dataclass
class Config:
    """Everything a user may set. Paths are resolved by `load_config`."""

    library: Path = Path(".")
    state_dir: Path = Path(".photovfs")
    database_url: str = ""
    views: ViewsConfig = field(default_factory=ViewsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    thumbnails: ThumbnailsConfig = field(default_factory=ThumbnailsConfig)
    trash: TrashConfig = field(default_factory=TrashConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    people: PeopleConfig = field(default_factory=PeopleConfig)
    xmp: XmpConfig = field(default_factory=XmpConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)

    @property
    def inbox_dir(self) -> Path:
        return Path(self.ingest.inbox_dir) if self.ingest.inbox_dir else self.state_dir / "inbox"

    @property
    def users_file(self) -> Path:
        return Path(self.server.users_file) if self.server.users_file else self.state_dir / "users.toml"


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the key."""


def _apply(target: Any, data: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in fields(target)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown setting {where}{key}")
        current = getattr(target, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a table")
            _apply(current, value, f"{where}{key}.")
        elif isinstance(current, Path):
            setattr(target, key, Path(value))
        else:
            if current is not None and not isinstance(value, type(current)) and not (
                isinstance(current, float) and isinstance(value, int)
            ):
                raise ConfigError(f"{where}{key} must be {type(current).__name__}")
            setattr(target, key, value)


def load_config(
    library: Path, *, config_file: Path | None = None, state_dir: Path | None = None
) -> Config:
    """Build the configuration for LIBRARY from defaults, the TOML file and command-line overrides."""
    library = library.expanduser().resolve()
    cfg = Config(library=library)
    state = (state_dir or library / STATE_DIRNAME).expanduser().resolve()
    path = config_file or state / "config.toml"
    if path.exists():
        with open(path, "rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
        _apply(cfg, data, "")
    elif config_file is not None:
        raise ConfigError(f"config file not found: {config_file}")
    cfg.library = library
    if state_dir is not None or cfg.state_dir == Path(".photovfs"):
        cfg.state_dir = state
    elif not cfg.state_dir.is_absolute():
        cfg.state_dir = (library / cfg.state_dir).resolve()
    if not cfg.database_url:
        cfg.database_url = f"sqlite:///{cfg.state_dir / 'catalog.db'}"
    return cfg
