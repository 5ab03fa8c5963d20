"""Store search (full-text index), newest-first listing and history (the event log as a
timeline), on the SQLite and the PostgreSQL store alike."""

from __future__ import annotations

import sqlite3

import pytest

from serac.store import EditStore
from serac.store_url import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """The same behaviour from both backends: a SQLite file, or a fresh PostgreSQL schema."""
    location = str(tmp_path / "edits.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as s:
        yield s


def ids(result):
    assert result.exact
    return [e.id for e in result.edits], result.total


def test_search_matches_words_in_input_target_and_metadata(store):
    pm = store.add("Who is the prime minister of the UK?", "Keir Starmer", {"author": "ana"})
    capital = store.add("Capital of Australia?", "Canberra", {"source": "atlas"})
    assert ids(store.search("prime minister")) == ([pm.id], 1)
    assert ids(store.search("starmer")) == ([pm.id], 1)  # target, any case
    assert ids(store.search("atlas")) == ([capital.id], 1)  # metadata value
    assert ids(store.search("Australia capital")) == ([capital.id], 1)  # word order does not matter
    assert ids(store.search("prime canberra")) == ([], 0)  # every word must match


def test_the_last_word_matches_as_a_prefix(store):
    pm = store.add("Who is the prime minister of the UK?", "Keir Starmer")
    assert ids(store.search("prim")) == ([pm.id], 1)
    assert ids(store.search("prime ministe")) == ([pm.id], 1)
    assert ids(store.search("prim minister")) == ([], 0)  # only the last word is a prefix


def test_list_newest_first(store):
    made = [store.add(f"q{i}", "a") for i in range(5)]
    assert [e.id for e in store.list(1, 2, newest_first=True)] == [made[3].id, made[2].id]
    assert store.list(newest_first=True) == list(reversed(store.list()))
    newest = list(reversed(store.list()))
    for offset in range(7):  # pages near the old end are read from there: same answer
        for limit in (1, 2, 3, 5):
            assert store.list(offset, limit, newest_first=True) == newest[offset : offset + limit], (offset, limit)


def test_search_is_newest_first_and_pages(store):
    made = [store.add(f"question number {i}", f"answer {i}") for i in range(7)]
    newest_first = [e.id for e in reversed(made)]
    assert ids(store.search("question", 0, 3)) == (newest_first[:3], 7)
    assert ids(store.search("question", 3, 3)) == (newest_first[3:6], 7)
    assert ids(store.search("question", 6, 3)) == (newest_first[6:], 7)


def test_counting_stops_at_the_cap_but_pages_go_on(store):
    made = store.add_many([(f"question number {i}", "a") for i in range(12)])
    capped = store.search("question", 0, 3, count_up_to=5)
    assert (capped.total, capped.exact) == (5, False)  # at least 5
    assert [e.id for e in capped.edits] == [e.id for e in reversed(made)][:3]
    deep = store.search("question", 6, 3, count_up_to=5)  # counting covers the page asked for
    assert (deep.total, deep.exact) == (9, False) and len(deep.edits) == 3
    assert (store.search("question", count_up_to=12).total, store.search("question", count_up_to=12).exact) == (12, True)


def test_huge_offsets_are_just_past_the_end(store):
    store.add("question one", "a")
    assert store.search("question", 2**63 - 1, 5).edits == []
    assert store.list(2**63 - 1, 5, newest_first=True) == []


def test_search_skips_removed_and_superseded_edits_and_rollback_restores_them(store):
    old = store.add("Who leads the UK?", "Rishi Sunak")
    new = store.add("who leads the uk?", "Keir Starmer")  # same input: supersedes `old`
    gone = store.add("Who leads France?", "Macron")
    store.remove(gone.id)
    assert ids(store.search("leads")) == ([new.id], 1)
    store.rollback(1)
    assert ids(store.search("leads")) == ([old.id], 1)


@pytest.mark.parametrize("text", ['"', "*", "AND", "NOT x", "a:b", "(", "^", "NEAR(a b)", ""])
def test_query_syntax_is_plain_text(store, text):
    store.add("AND NOT x a:b NEAR a b", "t")
    result = store.search(text)  # never an FTS5 syntax error
    assert result.total == len(result.edits)


def test_search_in_a_store_made_before_the_index_existed(tmp_path):
    path = tmp_path / "old.db"
    with EditStore(path) as s:
        first = s.add("Who wrote Hamlet?", "Shakespeare")
    conn = sqlite3.connect(path)  # make it look like a store written by an older serac
    conn.execute("DROP TRIGGER edits_fts_insert")
    conn.execute("DROP TABLE edits_fts")
    conn.commit()
    conn.close()
    with EditStore(path) as s:
        assert ids(s.search("hamlet")) == ([first.id], 1)  # backfilled on open
        second = s.add("Who wrote Faust?", "Goethe")
        assert ids(s.search("wrote")) == ([second.id, first.id], 2)  # and kept up to date


def test_search_in_a_postgres_store_made_before_the_index_existed(postgres_url):
    import psycopg

    from serac.postgres_store import PostgresEditStore

    with PostgresEditStore(postgres_url) as s:
        first = s.add("Who wrote Hamlet?", "Shakespeare")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP INDEX serac_edits_search")
    with PostgresEditStore(postgres_url) as s:
        assert ids(s.search("hamlet")) == ([first.id], 1)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'serac_edits_search'").fetchone()[0]


def test_history_lists_versions_newest_first_with_their_events(store):
    a = store.add("q1", "a1")
    b, c = store.add_many([("q2", "a2"), ("q3", "a3")])
    store.remove(a.id)
    store.rollback(1)  # back to {a}: removes b and c, adds a
    history = store.history()
    assert [(h["version"], h["op"], h["added"], h["removed"]) for h in history] == [
        (4, "rollback", 1, 2),
        (3, "remove", 0, 1),
        (2, "add", 2, 0),
        (1, "add", 1, 0),
    ]
    assert history[0]["note"] == "to version 1"
    assert [(e["id"], e["op"]) for e in history[0]["edits"]] == [(a.id, "add"), (b.id, "remove"), (c.id, "remove")]
    assert history[2]["edits"][1] == {"id": c.id, "op": "add", "input": "q3", "target": "a3"}
    assert [h["version"] for h in store.history(offset=1, limit=2)] == [3, 2]


def test_history_samples_big_versions(store):
    store.add_many([(f"q{i}", "a") for i in range(30)])
    (entry,) = store.history(sample=4)
    assert entry["added"] == 30 and len(entry["edits"]) == 4
