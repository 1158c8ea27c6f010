"""Applies the schema files shipped as `kafka_node.migration_files` (`migrations/NNN_name.sql`
in the source tree) in order, one transaction each, recording the version in `user_version`."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import NamedTuple

import apsw

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{3})_(\w+)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, oldest first."""
    found = []
    for entry in resources.files("kafka_node.migration_files").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must run 1, 2, 3, ... without gaps; found {versions}")
    return found


def latest_version() -> int:
    """The schema version this code creates and understands."""
    return len(available())


def current_version(conn: apsw.Connection) -> int:
    return conn.pragma("user_version")


def migrate(conn: apsw.Connection, known: Sequence[Migration] | None = None) -> int:
    """Bring the database up to the latest version; return that version.

    Each migration and its `PRAGMA user_version` share one transaction, so an upgrade
    happens fully or not at all. The version is read again inside the transaction, so two
    processes starting on one new file do not both apply the same migration. `known` is
    the list to apply instead of the shipped one (tests kill a migration of their own
    halfway through this runner).
    """
    for migration in available() if known is None else known:
        with conn:
            if current_version(conn) >= migration.version:
                continue
            conn.execute(migration.sql)
            conn.pragma("user_version", migration.version)
            logger.info("applied migration %03d_%s", migration.version, migration.name)
    return current_version(conn)
