"""SQLite files that go wrong: corrupt, foreign, in a read-only directory, on a full
disk. Each gives a clear error; what was committed before is still there."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE, T0

import qflow
from qflow.store import StoreError, TransientStoreError

pytest.importorskip("qflow_sqlite")


def _engine(path: Path) -> qflow.Engine:
    pm = qflow.make_plugin_manager(autoload=False)
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=f"sqlite:///{path}", clock=qflow.FakeClock(T0))


def _report(engine: qflow.Engine, i: int, size: int = 10) -> qflow.IncidentState:
    return engine.report({"channel": "phone", "category": "complaint", "description": f"{i} " + "噪音" * size})


def _same_as_before(path: Path, before: dict[str, tuple]) -> None:
    engine = _engine(path)
    try:
        assert {s.id: engine.events(s.id) for s in engine.query()} == before
        for iid, events in before.items():
            assert engine.get(iid) == qflow.events.fold(events)
    finally:
        engine.store.close()


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the full-disk and read-only tests use one")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_text("月度质量会议纪要\n" * 100, encoding="utf-8")
    with pytest.raises(StoreError) as err:
        _engine(path)
    assert str(err.value) == (f"{path} is damaged or not a qflow store: file is not a database; give the path of a qflow "
                              "store or of a new file; to restore a damaged store, stop every qflow process using it, "
                              "move it away with its -wal and -shm files, and copy a backup made by 'qflow db backup' "
                              "to its path")
    assert path.read_text(encoding="utf-8") == "月度质量会议纪要\n" * 100


def test_another_applications_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "crm.sqlite3"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('王芳')")
    con.commit()
    con.close()
    before = path.read_bytes()
    assert before[18:20] == b"\x01\x01"  # file format write and read versions: rollback journal, not WAL
    with pytest.raises(StoreError) as err:
        _engine(path)
    assert str(err.value) == (f"{path} is an SQLite database but not a qflow store (it has tables customers); "
                              "give the path of a qflow store or of a new file")
    # Every byte as it was: not even switched to WAL, and no -wal or -shm file beside it.
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.sqlite3"]


def test_a_corrupted_store_gives_a_clear_error(tmp_path):
    path = tmp_path / "q.sqlite3"
    engine = _engine(path)
    for i in range(30):
        _report(engine, i, size=200)
    engine.store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for n in range(2, len(data) // page):  # every page but the header page: garbage
        data[n * page:(n + 1) * page] = bytes([0xA5]) * page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        e = _engine(path)
        e.query()
    # The pages that hold the schema are garbage too, so it is found as the store opens.
    assert str(err.value) == (f"{path} is damaged or not a qflow store: database disk image is malformed; give the "
                              "path of a qflow store or of a new file; to restore a damaged store, stop every qflow "
                              "process using it, move it away with its -wal and -shm files, and copy a backup made "
                              "by 'qflow db backup' to its path")


def test_a_full_disk_refuses_the_write_and_keeps_what_was_committed(tmp_path):
    # Room for a few reports (each writes some 70 kB of log at first), not for 10,000.
    with _tmpfs(tmp_path / "tiny", "512k") as fs:
        path = fs / "q.sqlite3"
        engine = _engine(path)
        before: dict[str, tuple] = {}
        with pytest.raises(StoreError) as err:
            for i in range(10_000):
                state = _report(engine, i, size=250)
                before[state.id] = engine.events(state.id)
        assert str(err.value) == (f"the store {path} failed: database or disk is full; "
                                  "free space on the disk and retry; what was committed before is kept")
        assert isinstance(err.value, TransientStoreError)  # a worker waits and tries again
        assert len(before) >= 1
        engine.store.close()
        _same_as_before(path, before)


def test_a_read_only_directory_is_refused_and_the_data_survives(tmp_path):
    with _tmpfs(tmp_path / "ro", "4m") as fs:
        path = fs / "q.sqlite3"
        engine = _engine(path)
        before = {}
        for i in range(5):
            state = _report(engine, i)
            before[state.id] = engine.events(state.id)
        engine.store.close()
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        try:
            with pytest.raises(StoreError) as err:
                _engine(path)
            assert str(err.value) == (f"cannot open the store {path}: the directory {fs} is read-only "
                                      "(SQLite keeps its journal next to the file); give a path in a writable "
                                      "directory")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
        _same_as_before(path, before)


def test_not_running_as_root_uses_permissions_for_read_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions; the tmpfs tests above cover read-only as root")
    path = tmp_path / "q.sqlite3"
    engine = _engine(path)
    state = _report(engine, 0)
    engine.store.close()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(StoreError):
            _engine(path)
    finally:
        tmp_path.chmod(0o755)
    _same_as_before(path, {state.id: _engine(path).events(state.id)})
