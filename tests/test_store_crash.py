"""An edit that ``add`` acknowledged survives the writer being SIGKILLed mid-burst."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from serac.store_url import open_store

WRITER = textwrap.dedent(
    """
    import json, sys
    from serac.store_url import open_store

    store = open_store(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        edit = store.add(f"crash question {i}", f"crash answer {i}", {"i": i})
        print(json.dumps([edit.id, i]), flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_edits_survive_sigkill(tmp_path, backend, request):
    path = tmp_path / "edits.db"
    location = str(path) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    open_store(location).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, location], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    acknowledged: dict[int, int] = {}
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for _ in range(40):  # it is now writing as fast as it can; kill it mid-burst
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            edit_id, i = json.loads(line)
            acknowledged[edit_id] = i
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Lines printed after our last read are acknowledged too.
    for line in proc.stdout.read().splitlines():
        edit_id, i = json.loads(line)
        acknowledged[edit_id] = i
    proc.stdout.close()
    proc.stderr.close()

    with open_store(location) as store:  # reopening SQLite runs its quick_check and recovers the WAL
        for edit_id, i in acknowledged.items():
            edit = store.get(edit_id)
            assert (edit.input, edit.target, dict(edit.metadata)) == (
                f"crash question {i}",
                f"crash answer {i}",
                {"i": i},
            )
        # At most one edit committed after its acknowledgement was printed.
        assert len(acknowledged) <= store.count() <= len(acknowledged) + 1
        assert [v["version"] for v in store.versions()] == list(range(1, store.count() + 1))
        store.add("after the crash", "still writable")
    if backend == "postgres":
        return
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
