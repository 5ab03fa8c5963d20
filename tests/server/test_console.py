"""The console's page and JSON endpoints, over a real uvicorn server on tiny models.

The browser itself is driven in test_console_browser.py; these tests pin the API the page relies on.
"""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from serac.base import GREEDY

from .conftest import READ_KEY, WRITE_KEY

PM = "Who is the prime minister of Freedonia?"
UNRELATED = "How many legs does a spider have?"


def chat(question):
    return [{"role": "user", "content": question}]


# -- the page ---------------------------------------------------------------------------------------------
def test_the_page_and_its_files_are_served_by_the_package(http):
    page = http.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert http.get("/ui/").text == page.text
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sorted(assets) == ["/ui/static/app.js", "/ui/static/style.css"]
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        served = http.get(f"/ui/static/{asset}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert served.content == files("serac.server.console").joinpath("static", asset).read_bytes()
    for missing in ("index.html", "nope.js", "..%2Fapp.py", "%2E%2E%2Fapp.py"):
        assert http.get(f"/ui/static/{missing}").status_code == 404


def test_nothing_is_loaded_from_elsewhere():
    static = files("serac.server.console").joinpath("static")
    page = static.joinpath("index.html").read_text()
    script = static.joinpath("app.js").read_text()
    style = static.joinpath("style.css").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in style and "url(" not in style
    # the script's only absolute URL is the SVG namespace, which is a name, not a fetch
    assert re.findall(r"https?://[^\"'\s]+", script) == ["http://www.w3.org/2000/svg"]
    assert "innerHTML" not in script  # server and user text only ever goes in as textContent
    assert "localStorage" not in script and "sessionStorage" in script


# -- session and roles ----------------------------------------------------------------------------------
def test_session_without_auth_may_write(server, http):
    server.editor.add(PM, "Ana Gomez")
    body = http.get("/v1/console/session").json()
    assert body["auth"] is False and body["role"] == "write"
    assert body["count"] == 1 and body["version"] == server.editor.version
    assert body["threshold"] == server.editor.scope.threshold and body["top_k"] == server.editor.scope.top_k
    assert body["policy"] == "newest"


@pytest.mark.parametrize("key, role", [(READ_KEY, "read"), (WRITE_KEY, "write")])
def test_session_reports_the_key_role(auth_server, key, role):
    with auth_server.client(key) as client:
        body = client.get("/v1/console/session").json()
    assert body["auth"] is True and body["role"] == role


CONSOLE_ENDPOINTS = [
    ("GET", "/v1/console/session", None, "read"),
    ("GET", "/v1/console/edits?q=x", None, "read"),
    ("POST", "/v1/console/scope", {"question": "x"}, "read"),
    ("POST", "/v1/console/ask", {"question": "x", "max_tokens": 2}, "read"),
    ("GET", "/v1/console/edits/424242/conflicts", None, "read"),
    ("GET", "/v1/console/history", None, "read"),
    ("POST", "/v1/console/import", {"format": "jsonl", "content": ""}, "write"),
]


@pytest.mark.parametrize("method, path, body, role", CONSOLE_ENDPOINTS, ids=[e[1] for e in CONSOLE_ENDPOINTS])
def test_console_endpoints_need_the_right_key(auth_server, method, path, body, role):
    with auth_server.client() as anonymous:
        assert anonymous.request(method, path, json=body).status_code == 401
        assert anonymous.get("/ui").status_code == 200  # the page itself holds nothing; it asks for a key
    with auth_server.client(READ_KEY) as reader:
        status = reader.request(method, path, json=body).status_code
        assert status == (403 if role == "write" else 404 if "424242" in path else 200)
    with auth_server.client(WRITE_KEY) as writer:
        assert writer.request(method, path, json=body).status_code in (200, 404)


# -- edits table: newest first, paging, search ---------------------------------------------------------------
def test_edits_newest_first_with_paging(server, http):
    made = server.editor.add_many([(f"question number {i}", f"answer {i}") for i in range(7)])
    newest = [e.id for e in reversed(made)]
    pages = [http.get("/v1/console/edits", params={"offset": o, "limit": 3}).json() for o in (0, 3, 6, 9)]
    assert [[e["id"] for e in p["data"]] for p in pages] == [newest[:3], newest[3:6], newest[6:], []]
    assert [p["has_more"] for p in pages] == [True, True, False, False]
    assert all(p["total"] == 7 for p in pages)


def test_edits_search(server, http):
    pm = server.editor.add(PM, "Ana Gomez", {"author": "lee"})
    server.editor.add(UNRELATED, "Eight")
    found = http.get("/v1/console/edits", params={"q": "freedon"}).json()
    assert [e["id"] for e in found["data"]] == [pm.id] and found["total"] == 1
    assert http.get("/v1/console/edits", params={"q": "lee"}).json()["total"] == 1  # metadata
    assert http.get("/v1/console/edits", params={"q": "spider gomez"}).json()["total"] == 0
    assert http.get("/v1/console/edits", params={"q": "   "}).json()["total"] == 2  # blank: everything
    assert http.get("/v1/console/edits", params={"limit": 100_000}).status_code == 400
    for q in ("", "question"):  # the largest offset is past the end, not a server error
        assert http.get("/v1/console/edits", params={"q": q, "offset": 2**63 - 1}).json()["data"] == []


def test_edits_search_counts_up_to_a_limit(server, http, monkeypatch):
    from serac.server.routers import console

    server.editor.add_many([(f"question number {i}", "a") for i in range(3)])
    exact = http.get("/v1/console/edits", params={"q": "question", "limit": 1}).json()
    assert (exact["total"], exact["total_exact"], exact["has_more"]) == (3, True, True)
    monkeypatch.setattr(console, "SEARCH_COUNT_LIMIT", 1)
    capped = http.get("/v1/console/edits", params={"q": "question", "limit": 1}).json()
    assert (capped["total"], capped["total_exact"], capped["has_more"]) == (1, False, True)
    last = http.get("/v1/console/edits", params={"q": "question", "limit": 1, "offset": 2}).json()
    assert (last["total"], last["total_exact"], last["has_more"]) == (3, True, False)


# -- scope, ask, conflicts ----------------------------------------------------------------------------------
def test_scope_explains_which_edit_would_fire(server, http):
    pm = server.editor.add(PM, "Ana Gomez")
    server.editor.add(UNRELATED, "Eight")
    fired = http.post("/v1/console/scope", json={"question": PM}).json()
    assert fired["in_scope"] and fired["edit_id"] == pm.id
    assert fired["threshold"] == 0.7 and fired["top_k"] == 3
    scores = [c["score"] for c in fired["candidates"]]
    assert scores == sorted(scores, reverse=True) and fired["score"] == pytest.approx(scores[0])
    assert fired["candidates"][0]["edit"]["id"] == pm.id and fired["candidates"][0]["above_threshold"]
    assert [c["above_threshold"] for c in fired["candidates"]] == [s >= 0.7 for s in scores]
    quiet = http.post("/v1/console/scope", json={"question": "Completely different words here"}).json()
    assert not quiet["in_scope"] and quiet["edit_id"] is None and quiet["score"] < 0.7


def test_ask_shows_base_and_edited_answers(server, http):
    pm = server.editor.add(PM, "Ana Gomez")
    editor = server.editor
    edited = http.post("/v1/console/ask", json={"question": PM}).json()
    assert edited["edited"]["source"] == "counterfactual" and edited["edited"]["edit_id"] == pm.id
    assert edited["edited"]["edit"]["target"] == "Ana Gomez"
    assert edited["edited"]["text"] == editor.generate([chat(PM)])[0].text
    assert edited["base"]["text"] == editor.base.generate([chat(PM)], GREEDY)[0]
    assert edited["edited"]["score"] == pytest.approx(1.0, abs=1e-5) and edited["candidates"]

    plain = http.post("/v1/console/ask", json={"question": UNRELATED}).json()
    assert plain["edited"]["source"] == "base" and plain["edited"]["edit_id"] is None
    assert plain["base"]["text"] == plain["edited"]["text"] == editor.base.generate([chat(UNRELATED)], GREEDY)[0]


def test_ask_checks_its_limits(server, http):
    assert http.post("/v1/console/ask", json={"question": "x", "max_tokens": 10_000}).status_code == 400
    assert http.post("/v1/console/ask", json={"question": ""}).status_code == 400
    assert http.post("/v1/console/ask", json={"question": "x", "extra": 1}).status_code == 400


def test_conflicts_show_the_same_fact_and_who_answers(server, http):
    old = server.editor.add("Which company makes the Widget X?", "Acme")
    new = server.editor.add("Which company now makes the Widget X?", "Globex")  # same fact, reworded
    other = server.editor.add("Where is the Widget X made?", "Ohio")  # same subject, another fact
    body = http.get(f"/v1/console/edits/{old.id}/conflicts").json()
    assert body["edit"]["id"] == old.id and body["policy"] == "newest"
    assert body["key_threshold"] == 0.7 and body["same_fact_threshold"] == server.editor.scope.same_fact.threshold
    assert body["answering_edit_id"] == new.id and body["answering_target"] == "Globex"
    by_id = {n["edit"]["id"]: n for n in body["neighbours"]}
    assert body["neighbours"][0]["edit"]["id"] == old.id and by_id[old.id]["same_fact"]
    assert by_id[new.id]["same_fact"] and by_id[new.id]["score"] >= 0.7
    assert by_id[new.id]["relation_similarity"] >= body["same_fact_threshold"]
    judge = server.editor.scope.same_fact
    expected = judge.similarities(server.editor.store.get(old.id), [server.editor.store.get(other.id)])[0]
    assert by_id[other.id]["relation_similarity"] == pytest.approx(expected)
    assert by_id[other.id]["relation_similarity"] < body["same_fact_threshold"] and not by_id[other.id]["same_fact"]

    alone = http.get(f"/v1/console/edits/{other.id}/conflicts").json()
    assert alone["answering_edit_id"] == other.id
    assert [n["edit"]["id"] for n in alone["neighbours"] if n["same_fact"]] == [other.id]

    server.editor.remove(new.id)  # the older edit answers its fact again
    assert http.get(f"/v1/console/edits/{old.id}/conflicts").json()["answering_edit_id"] == old.id
    missing = http.get(f"/v1/console/edits/{new.id}/conflicts")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "edit_not_found"


# -- history ------------------------------------------------------------------------------------------------------
def test_history_timeline(server, http):
    editor = server.editor
    start = editor.version
    a = editor.add("q one", "a one")
    b = editor.add("q two", "a two")
    editor.remove(a.id)
    editor.rollback(start + 1)  # a back, b gone
    page = http.get("/v1/console/history", params={"limit": 4}).json()
    assert page["current"] == start + 4 and page["total"] == start + 4
    assert [(v["version"], v["op"]) for v in page["data"]] == [
        (start + 4, "rollback"), (start + 3, "remove"), (start + 2, "add"), (start + 1, "add"),
    ]
    assert {(e["id"], e["op"]) for e in page["data"][0]["edits"]} == {(a.id, "add"), (b.id, "remove")}
    assert page["data"][0]["note"] == f"to version {start + 1}"
    assert page["has_more"] == (start > 0)


# -- bulk import -----------------------------------------------------------------------------------------------
GOOD_CSV = "input,target,author\nWho wrote Faust?,Goethe,ana\nCapital of Freedonia?,Fredville,\n"
BAD_CSV = GOOD_CSV + ",no input,\nok,fine,\n"


def test_import_dry_run_reports_every_row_and_writes_nothing(server, http):
    before = (server.editor.version, server.editor.store.count())
    report = http.post("/v1/console/import", json={"format": "csv", "content": BAD_CSV}).json()
    assert report["rows"] == 4 and report["valid"] == 3 and not report["written"]
    assert report["errors"] == [{"row": 4, "message": "edit input is empty; give a non-blank input"}]
    assert (server.editor.version, server.editor.store.count()) == before

    refused = http.post("/v1/console/import", json={"format": "csv", "content": BAD_CSV, "dry_run": False})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_import"
    assert "line 4" in refused.json()["error"]["message"] and "nothing was written" in refused.json()["error"]["message"]
    assert (server.editor.version, server.editor.store.count()) == before


def test_import_writes_all_rows_as_one_version(server, http):
    before = server.editor.version
    done = http.post("/v1/console/import", json={"format": "csv", "content": GOOD_CSV, "dry_run": False}).json()
    assert done["written"] and done["version"] == before + 1 and done["errors"] == []
    assert [(e["input"], e["metadata"]) for e in done["data"]] == [
        ("Who wrote Faust?", {"author": "ana"}),
        ("Capital of Freedonia?", {}),
    ]
    assert server.editor.route([chat("Capital of Freedonia?")])[0].edit.target == "Fredville"
    jsonl = '{"input": "Who painted the Mona Lisa?", "target": "Leonardo"}\n'
    assert http.post("/v1/console/import", json={"format": "jsonl", "content": jsonl, "dry_run": False}).json()["written"]


def test_import_limits(server, http, monkeypatch):
    empty = http.post("/v1/console/import", json={"format": "jsonl", "content": "\n", "dry_run": False})
    assert empty.status_code == 400 and "no edits" in empty.json()["error"]["message"]
    monkeypatch.setattr(server.app.state.settings, "max_edits_per_request", 2)
    big = http.post("/v1/console/import", json={"format": "csv", "content": BAD_CSV})
    assert big.status_code == 400 and "split the file" in big.json()["error"]["message"]
    assert http.post("/v1/console/import", json={"format": "xml", "content": "x"}).status_code == 400


# -- fuzzing ---------------------------------------------------------------------------------------------------
def test_console_endpoints_never_answer_5xx_to_generated_requests(server, tmp_path):
    """test_fuzz.py's budget runs out before it reaches the console's operations; these get their own
    (ask, which generates text, is left to that run)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis.configuration import set_hypothesis_home_dir

    from .test_fuzz import fuzz_operations

    server.editor.add(PM, "Ana Gomez")
    set_hypothesis_home_dir(str(tmp_path / "hypothesis"))
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith("/v1/console/") and not op.path.endswith("/ask")
    ]
    assert len(operations) == 6, [op.label for op in operations]
    seen, failures = fuzz_operations(operations, server.url, budget_s=40.0)
    assert not failures, "\n".join(failures[:10])
    assert len(seen) == 6 and all(len(codes) >= 10 for codes in seen.values()), seen
