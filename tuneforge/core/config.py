"""Settings shared by every role, and Bittensor-style `--section.name` flags built from them.

Each role composes its own settings class from these sections (e.g. `miner/config.py`). Values
resolve in the order: command-line flag > environment (`TUNEFORGE_SECTION__NAME`) > default.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NETUID = 234


class WalletSettings(BaseModel):
    name: str = Field(default="default", description="coldkey wallet name")
    hotkey: str = Field(default="default", description="hotkey name inside the wallet")
    path: str = Field(default="~/.bittensor/wallets", description="wallets directory")


class ChainSettings(BaseModel):
    network: str = Field(
        default="test", description="finney | test | local | ws://… | localnet (LocalChain file)"
    )
    netuid: int = Field(default=DEFAULT_NETUID, ge=0, description="subnet uid")


class LocalnetSettings(BaseModel):
    path: str = Field(default="", description="LocalChain SQLite file (with --network localnet)")


class AxonSettings(BaseModel):
    ip: str = Field(default="0.0.0.0", description="address the HTTP server binds")
    port: int = Field(default=8091, ge=1, le=65535, description="port the HTTP server binds")
    external_ip: str = Field(default="", description="public IP published on chain (NAT)")
    external_port: int = Field(default=0, ge=0, le=65535, description="public port (NAT)")


class LoggingSettings(BaseModel):
    level: str = Field(default="INFO", description="DEBUG | INFO | WARNING | ERROR")
    logging_dir: str = Field(default="", description="also write rotating logs here")


class TuneForgeSettings(BaseSettings):
    """Base for role settings: env prefix TUNEFORGE_, nested sections joined with '__'."""

    model_config = SettingsConfigDict(
        env_prefix="TUNEFORGE_", env_nested_delimiter="__", extra="ignore"
    )


S = TypeVar("S", bound=BaseSettings)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], prefix: str) -> None:
    for name, info in model.model_fields.items():
        annotation = _unwrap_optional(info.annotation)
        flag_name = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _add_model_flags(parser, annotation, f"{flag_name}.")
            continue
        flag = "--" + flag_name
        help_text = (
            info.description or ""
        ) + f" (env TUNEFORGE_{flag_name.upper().replace('.', '__')})"
        if annotation is bool:
            parser.add_argument(
                flag,
                dest=flag_name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif typing.get_origin(annotation) is list:
            parser.add_argument(flag, dest=flag_name, nargs="*", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=flag_name, default=None, help=help_text)


def build_parser(settings_cls: type[BaseSettings], description: str) -> argparse.ArgumentParser:
    """An argparse parser with one `--section.field` flag per settings field."""
    parser = argparse.ArgumentParser(description=description)
    _add_model_flags(parser, settings_cls, "")
    return parser


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_settings(settings_cls: type[S], argv: list[str] | None, description: str = "") -> S:
    """Parse flags over env over defaults into a validated settings object."""
    args = build_parser(settings_cls, description).parse_args(argv)
    from_flags = _nest(vars(args))
    from_env = settings_cls().model_dump()
    return settings_cls.model_validate(_deep_merge(from_env, from_flags))


def expand_path(path: str) -> Path:
    return Path(os.path.expandvars(path)).expanduser()
