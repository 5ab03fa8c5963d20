"""Edit management over HTTP: add one or many atomically, list, get, delete, roll back, version."""

from __future__ import annotations


def _add(http, *edits):
    body = {"edits": list(edits)} if len(edits) > 1 else edits[0]
    response = http.post("/v1/edits", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_add_one_then_get_it_back(http):
    created = _add(
        http, {"input": "  Who leads the UK? ", "target": "Keir Starmer", "metadata": {"author": "ana"}}
    )
    edit = created["data"][0]
    assert edit["object"] == "edit" and edit["input"] == "Who leads the UK?"  # normalised as the store does
    assert edit["metadata"] == {"author": "ana"} and edit["created_at"].endswith("+00:00")
    assert http.get(f"/v1/edits/{edit['id']}").json() == edit
    assert http.get("/v1/edits/version").json() == {"version": created["version"], "count": 1}


def test_add_many_is_one_version_and_listing_pages(http):
    before = http.get("/v1/edits/version").json()["version"]
    created = _add(http, *({"input": f"question {i}", "target": f"answer {i}"} for i in range(5)))
    assert created["version"] == before + 1 and len(created["data"]) == 5

    page = http.get("/v1/edits", params={"offset": 1, "limit": 2}).json()
    assert [e["input"] for e in page["data"]] == ["question 1", "question 2"]
    assert (page["total"], page["offset"], page["limit"], page["has_more"]) == (5, 1, 2, True)
    last = http.get("/v1/edits", params={"offset": 4, "limit": 2}).json()
    assert [e["input"] for e in last["data"]] == ["question 4"] and last["has_more"] is False
    # by cursor: the same edits, and the next cursor until the last page
    pages, cursor = [], 0
    while cursor is not None:
        page = http.get("/v1/edits", params={"after_id": cursor, "limit": 2}).json()
        pages.append([e["input"] for e in page["data"]])
        cursor = page["next_after_id"]
        assert page["has_more"] is (cursor is not None)
    assert pages == [["question 0", "question 1"], ["question 2", "question 3"], ["question 4"]]


def test_a_bad_item_rejects_the_whole_batch(http):
    before = http.get("/v1/edits/version").json()
    response = http.post(
        "/v1/edits", json={"edits": [{"input": "fine", "target": "ok"}, {"input": "   ", "target": "x"}]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_edit" and "edit #1" in error["message"] and "empty" in error["message"]
    assert http.get("/v1/edits/version").json() == before


def test_the_newer_edit_on_the_same_input_wins(http):
    first = _add(http, {"input": "capital of Atlantis", "target": "Poseidonia"})["data"][0]
    second = _add(http, {"input": "Capital of  atlantis", "target": "Meropis"})["data"][0]
    assert http.get(f"/v1/edits/{first['id']}").status_code == 404
    assert [e["target"] for e in http.get("/v1/edits").json()["data"]] == ["Meropis"]
    assert second["id"] != first["id"]


def test_delete_then_rollback_restores(http):
    edit = _add(http, {"input": "largest planet", "target": "Saturn"})
    version_with_edit = edit["version"]
    edit_id = edit["data"][0]["id"]

    deleted = http.delete(f"/v1/edits/{edit_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {
        "id": edit_id,
        "object": "edit.deleted",
        "deleted": True,
        "version": version_with_edit + 1,
    }
    assert http.get(f"/v1/edits/{edit_id}").status_code == 404
    assert http.delete(f"/v1/edits/{edit_id}").status_code == 404

    rolled = http.post("/v1/edits/rollback", json={"version": version_with_edit})
    assert rolled.status_code == 200
    assert rolled.json() == {
        "rolled_back_to": version_with_edit,
        "version": version_with_edit + 2,
        "count": 1,
    }
    assert http.get(f"/v1/edits/{edit_id}").json()["target"] == "Saturn"


def test_rollback_to_zero_empties_the_memory_and_inference_follows(http):
    _add(http, {"input": "what is the capital of australia", "target": "sydney"})
    ask = {"messages": [{"role": "user", "content": "what is the capital of australia"}], "max_tokens": 2}
    assert (
        http.post("/v1/chat/completions", json=ask).json()["choices"][0]["serac"]["source"]
        == "counterfactual"
    )
    assert http.post("/v1/edits/rollback", json={"version": 0}).json()["count"] == 0
    assert http.post("/v1/chat/completions", json=ask).json()["choices"][0]["serac"]["source"] == "base"
