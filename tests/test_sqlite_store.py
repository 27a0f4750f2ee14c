"""SQLite specifics: migrations, a newer schema refused, backup, foreign and corrupt
files, read-only places, URLs."""

from __future__ import annotations

import os
import sqlite3

import pytest

from qflow.store import SchemaError, StoreError
from qflow_sqlite import SQLiteStore, parse_url
from qflow_sqlite._schema import MIGRATIONS, SCHEMA_VERSION

from tests.store.builders import report_write


def _v1(path) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO qflow_schema VALUES (1, 'then')")
    con.close()


def test_an_older_schema_must_be_upgraded_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    _v1(path)
    store = SQLiteStore(path)
    assert store.schema_version() == 1
    with pytest.raises(SchemaError) as err:
        store.get("INC-1")
    assert str(err.value) == (f"the store {path} has schema version 1, older than the {SCHEMA_VERSION} this qflow "
                              f"needs; run 'qflow db upgrade --store sqlite:///{path}' (after 'qflow db backup')")
    assert store.upgrade() == (1, SCHEMA_VERSION)
    store.write([report_write("INC-1", dedup_key="k")])
    store.close()
    again = SQLiteStore(path)
    assert again.schema_version() == SCHEMA_VERSION and again.get("INC-1") is not None
    assert again.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_a_failed_upgrade_is_one_line_and_changes_nothing(tmp_path):
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("DELETE FROM qflow_schema WHERE version > 1")  # a version set back by hand
    con.commit()
    con.close()
    store = SQLiteStore(path)
    with pytest.raises(StoreError) as err:
        store.upgrade()
    assert str(err.value) == (f"the upgrade from schema version 1 to {SCHEMA_VERSION} of the store {path} failed "
                              "(duplicate column name: dedup_key); it was rolled back and nothing changed; the tables "
                              "do not match the schema version qflow_schema records (edited by hand, or restored in "
                              "part): restore the backup taken before, or ask the person who changed them")
    assert store.schema_version() == 1
    store.close()
    assert SQLiteStore(path).schema_version() == 1


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    SQLiteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO qflow_schema VALUES (99, 'later')")
    con.commit()
    con.close()
    with pytest.raises(SchemaError) as err:
        SQLiteStore(path)
    assert str(err.value) == (f"the store {path} has schema version 99, newer than the {SCHEMA_VERSION} this qflow "
                              "knows; upgrade qflow (pip install -U qflow) or open a backup made before the newer "
                              "qflow touched it")


def test_backup_copies_a_store_in_use(tmp_path):
    store = SQLiteStore(tmp_path / "live.sqlite3")
    store.write([report_write(f"INC-{n}") for n in range(1, 30)])
    store.backup(tmp_path / "copy.sqlite3")
    store.write([report_write("INC-30")])
    copy = SQLiteStore(tmp_path / "copy.sqlite3")
    assert copy.get("INC-29") == store.get("INC-29") and copy.get("INC-30") is None


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "crm.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        SQLiteStore(path)
    assert str(err.value) == (f"{path} is an SQLite database but not a qflow store (it has tables customers); "
                              "give the path of a qflow store or of a new file")
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_a_missing_or_empty_file_is_refused_when_not_to_be_made(tmp_path):
    path = tmp_path / "typo.sqlite3"
    with pytest.raises(StoreError) as err:
        SQLiteStore(path, create=False)
    assert str(err.value) == (f"no store at {path} (the file does not exist); check the path, or create the store "
                              "with 'qflow import' (or 'qflow demo')")
    assert not path.exists()
    path.touch()
    with pytest.raises(StoreError) as err:
        SQLiteStore(path, create=False)
    assert str(err.value) == (f"no store at {path} (the file is empty); check the path, or create the store "
                              "with 'qflow import' (or 'qflow demo')")
    assert path.read_bytes() == b""
    SQLiteStore(path).close()  # made when it may be
    SQLiteStore(path, create=False).close()


def test_a_corrupt_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "broken.sqlite3"
    store = SQLiteStore(path)
    store.write([report_write("INC-1")])
    store.close()
    data = bytearray(path.read_bytes())
    data[:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        SQLiteStore(path)
    assert str(err.value) == (f"{path} is damaged or not a qflow store: file is not a database; give the path of a qflow "
                              "store or of a new file; to restore a damaged store, stop every qflow process using it, "
                              "move it away with its -wal and -shm files, and copy a backup made by 'qflow db backup' "
                              "to its path")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; run as a user to check this")
def test_a_read_only_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StoreError) as err:
            SQLiteStore(ro / "s.sqlite3")
        assert str(err.value) == (f"cannot open the store {ro / 's.sqlite3'}: the directory {ro} is read-only "
                                  "(SQLite keeps its journal next to the file); give a path in a writable directory")
    finally:
        ro.chmod(0o700)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError) as err:
        SQLiteStore(tmp_path / "nope" / "s.sqlite3")
    assert str(err.value) == (f"cannot open the store {tmp_path / 'nope' / 's.sqlite3'}: the directory "
                              f"{tmp_path / 'nope'} does not exist; create it or give another path")


def test_urls_name_relative_and_absolute_files_and_options():
    assert parse_url("sqlite:///qflow.sqlite3") == ("qflow.sqlite3", {})
    assert parse_url("sqlite:////var/lib/q.db?synchronous=FULL&timeout=2") == \
        ("/var/lib/q.db", {"synchronous": "full", "timeout": 2.0})
    with pytest.raises(StoreError) as err:
        parse_url("sqlite:///q.db?journal=delete")
    assert str(err.value) == "'sqlite:///q.db?journal=delete': unknown parameter 'journal'; the parameters are synchronous, timeout"


def test_full_synchronous_is_set_on_the_connection(tmp_path):
    store = SQLiteStore(tmp_path / "f.sqlite3", synchronous="full")
    assert store._con.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert store._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_ids_are_counted_without_waiting_on_the_disk_and_the_writes_still_do(tmp_path):
    # With synchronous=full the id counter commits as under normal (the report's own
    # write, which waits on the disk, takes it along); the setting comes back after.
    store = SQLiteStore(tmp_path / "f.sqlite3", synchronous="full")
    seen = []
    store._con.set_trace_callback(lambda sql: sql.startswith("PRAGMA synchronous=") and seen.append(sql))
    assert [store.next_id(), store.next_id()] == ["INC-1", "INC-2"]
    assert seen == ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"] * 2
    assert store._con.execute("PRAGMA synchronous").fetchone()[0] == 2
    normal = SQLiteStore(tmp_path / "n.sqlite3")
    normal._con.set_trace_callback(lambda sql: sql.startswith("PRAGMA synchronous=") and seen.append(sql))
    assert normal.next_id() == "INC-1" and len(seen) == 4  # nothing to relax
