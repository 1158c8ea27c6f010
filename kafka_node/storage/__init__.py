"""The SQLite log and everything that touches its file: opening and checking it (`opening`), the
log's statements (`log`), the WAL's sync and checkpoint threads (`wal`), failures (`failures`)."""

from kafka_node.storage.failures import StorageError, describe
from kafka_node.storage.opening import (
    APPLICATION_ID,
    NODE_ID_PLACEHOLDER,
    PAGE_SIZE,
    Durability,
    UnusableDatabase,
    fresh_database_path,
)
from kafka_node.storage.store import LogFile, Storage

__all__ = [
    "APPLICATION_ID",
    "NODE_ID_PLACEHOLDER",
    "PAGE_SIZE",
    "Durability",
    "LogFile",
    "Storage",
    "StorageError",
    "UnusableDatabase",
    "describe",
    "fresh_database_path",
]
