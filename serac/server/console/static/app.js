// serac console: a small page over the server's JSON API (no framework, no build step).
// Every piece of user or server text is put in the page with textContent, never as HTML.
// The API key lives in this tab's sessionStorage and travels only in the Authorization header.
"use strict";

const KEY_SLOT = "serac.apiKey";
const PAGE_SIZE = 20;
const HISTORY_PAGE = 10;

const state = {
  session: null, // GET /v1/console/session
  offset: 0,
  query: "",
  total: 0,
  historyOffset: 0,
  bulk: null, // {format, content} of a checked, error-free file
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function say(id, text, isError = false) {
  const node = $(id);
  node.textContent = text || "";
  node.classList.toggle("error", Boolean(isError));
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let pending = 0; // requests in flight, shown as aria-busy on the body (tests wait on it too)

function busy(step) {
  pending += step;
  document.body.setAttribute("aria-busy", String(pending > 0));
}

async function api(method, path, body) {
  busy(1);
  try {
    return await request(method, path, body);
  } finally {
    busy(-1);
  }
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_SLOT);
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : "HTTP " + response.status;
    if (response.status === 401) showLogin(key ? message : "");
    throw new ApiError(response.status, message);
  }
  return data;
}

// Run an action and report its failure in a status line instead of throwing.
async function guarded(statusId, action) {
  try {
    return await action();
  } catch (error) {
    say(statusId, error.message, true);
    return undefined;
  }
}

const fmtScore = (score) => (score === null || score === undefined ? "–" : Number(score).toFixed(3));

function fmtTime(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function fmtMeta(meta) {
  const keys = Object.keys(meta || {});
  return keys.length ? keys.map((k) => k + ": " + JSON.stringify(meta[k])).join(", ") : "–";
}

const canWrite = () => state.session && state.session.role === "write";

// -- session and sign-in ------------------------------------------------------------------------
function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
  say("login-status", message, true);
  $("login-key").focus();
}

async function loadSession() {
  try {
    state.session = await api("GET", "/v1/console/session");
  } catch (error) {
    if (error.status !== 401) showLogin(error.message); // 401 has shown the sign-in form already
    return false;
  }
  const s = state.session;
  $("login").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = !s.auth;
  const access = s.auth ? (s.role === "write" ? "write key" : "read key: read-only") : "auth off (loopback only)";
  $("who").textContent =
    `model ${s.model} · store version ${s.version} · ${s.count} live edits · threshold ${fmtScore(s.threshold)} · ${access}`;
  for (const node of document.querySelectorAll(".write-only")) node.hidden = !canWrite();
  return true;
}

async function start() {
  if (await loadSession()) await Promise.all([loadEdits(), loadHistory()]);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_SLOT, $("login-key").value.trim());
  $("login-key").value = "";
  say("login-status", "");
  await start();
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_SLOT);
  state.session = null;
  showLogin("");
});

// -- tabs ------------------------------------------------------------------------------------------
const tabs = ["edits", "ask", "history"];

function selectTab(name) {
  for (const tab of tabs) {
    const selected = tab === name;
    $("tab-" + tab).setAttribute("aria-selected", String(selected));
    $("panel-" + tab).hidden = !selected;
  }
  if (name === "history") loadHistory();
}

for (const [i, tab] of tabs.entries()) {
  $("tab-" + tab).addEventListener("click", () => selectTab(tab));
  $("tab-" + tab).addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    selectTab(next);
    $("tab-" + next).focus();
  });
}

// -- confirmation dialog ----------------------------------------------------------------------------
function confirmAction(text, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- edits table -------------------------------------------------------------------------------------
async function loadEdits() {
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE_SIZE });
  if (state.query) params.set("q", state.query);
  const page = await guarded("edits-status", () => api("GET", "/v1/console/edits?" + params));
  if (!page) return;
  state.total = page.total;
  const body = $("edits-table").tBodies[0];
  body.replaceChildren();
  for (const edit of page.data) body.append(editRow(edit));
  if (!page.data.length) {
    body.append(el("tr", {}, el("td", { colspan: "6", text: state.query ? "No edit matches." : "No live edits." })));
  }
  const first = page.total ? state.offset + 1 : 0;
  const last = state.offset + page.data.length;
  $("page-info").textContent = `${first}–${last} of ${page.total.toLocaleString("en-US")}${page.total_exact ? "" : "+"}`;
  $("edits-caption").textContent = state.query
    ? `Live edits matching “${state.query}”, newest first`
    : "Live edits, newest first";
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = !page.has_more;
  say("edits-status", "");
}

function editRow(edit) {
  const actions = el(
    "td",
    { class: "actions" },
    el("button", {
      type: "button",
      text: "Conflicts",
      "aria-label": `Conflicts for edit ${edit.id}`,
      onclick: () => showConflicts(edit.id),
    }),
  );
  if (canWrite()) {
    actions.append(
      el("button", {
        type: "button",
        class: "danger",
        text: "Remove",
        "aria-label": `Remove edit ${edit.id}`,
        onclick: () => removeEdit(edit),
      }),
    );
  }
  return el(
    "tr",
    { "data-edit-id": String(edit.id) },
    el("td", { text: String(edit.id) }),
    el("td", { text: edit.input }),
    el("td", { text: edit.target }),
    el("td", { class: "meta", text: fmtMeta(edit.metadata) }),
    el("td", { class: "when", text: fmtTime(edit.created_at) }),
    actions,
  );
}

async function removeEdit(edit) {
  const ok = await confirmAction(
    `Remove edit #${edit.id} (“${edit.input}” → “${edit.target}”)? A rollback brings it back.`,
    "Remove edit",
  );
  if (!ok) return;
  const done = await guarded("edits-status", () => api("DELETE", "/v1/edits/" + edit.id));
  if (!done) return;
  await refreshAll();
  say("edits-status", `Removed edit #${edit.id} (store version ${done.version}).`);
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = $("search-q").value.trim();
  state.offset = 0;
  loadEdits();
});
$("search-clear").addEventListener("click", () => {
  $("search-q").value = "";
  state.query = "";
  state.offset = 0;
  loadEdits();
});
$("page-prev").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE_SIZE);
  loadEdits();
});
$("page-next").addEventListener("click", () => {
  state.offset += PAGE_SIZE;
  loadEdits();
});

async function refreshAll() {
  await loadSession();
  await Promise.all([loadEdits(), loadHistory()]);
}

// -- scope: which edits would fire, and the chart -------------------------------------------------------
function candidateTable(candidates, firedId, caption) {
  const body = el("tbody");
  for (const c of candidates) {
    body.append(
      el(
        "tr",
        { class: c.edit.id === firedId ? "fired" : null, "data-edit-id": String(c.edit.id) },
        el("td", { text: String(c.edit.id) }),
        el("td", { text: c.edit.input }),
        el("td", { text: c.edit.target }),
        el("td", { class: "num", text: fmtScore(c.score) }),
        el("td", { text: c.above_threshold ? "yes" : "no" }),
        el("td", { text: c.edit.id === firedId ? "answers" : "" }),
      ),
    );
  }
  return el(
    "table",
    { class: "candidates" },
    el("caption", { text: caption }),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["id", "input", "target", "score", "over threshold", "fires"].map((h) => el("th", { scope: "col", text: h })),
      ),
    ),
    body,
  );
}

// A horizontal bar per candidate (its score) and a line at the threshold: inline SVG, no library.
function scoreChart(candidates, threshold, firedId) {
  const ns = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const labelWidth = 230, barWidth = 360, rowHeight = 24, top = 22;
  const low = Math.min(0, ...candidates.map((c) => c.score), threshold);
  const x = (v) => labelWidth + ((v - low) / (1 - low)) * barWidth;
  const height = top + rowHeight * candidates.length + 8;
  const summary = candidates.map((c) => `#${c.edit.id} ${fmtScore(c.score)}`).join(", ");
  const svg = svgEl("svg", {
    class: "chart",
    viewBox: `0 0 ${labelWidth + barWidth + 70} ${height}`,
    role: "img",
    "aria-label": `Scope scores of the top candidates against the threshold ${fmtScore(threshold)}: ${summary || "none"}`,
  });
  candidates.forEach((c, i) => {
    const y = top + i * rowHeight;
    const label = `#${c.edit.id} ${c.edit.input}`;
    svg.append(svgEl("text", { x: labelWidth - 8, y: y + 15, "text-anchor": "end", class: "label" },
      label.length > 30 ? label.slice(0, 29) + "…" : label));
    const kind = c.edit.id === firedId ? "bar fired" : c.above_threshold ? "bar above" : "bar below";
    const x0 = x(0), x1 = x(c.score);
    svg.append(svgEl("rect", { x: Math.min(x0, x1), y: y + 3, width: Math.max(1, Math.abs(x1 - x0)), height: rowHeight - 8, class: kind }));
    svg.append(svgEl("text", { x: Math.max(x0, x1) + 6, y: y + 15, class: "value" }, fmtScore(c.score)));
  });
  const tx = x(threshold);
  svg.append(svgEl("line", { x1: tx, x2: tx, y1: top - 6, y2: height - 4, class: "threshold" }));
  svg.append(svgEl("text", { x: tx, y: 12, "text-anchor": "middle", class: "threshold-label" }, `threshold ${fmtScore(threshold)}`));
  return svg;
}

$("scope-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("scope-q").value;
  const result = await guarded("scope-status", () => api("POST", "/v1/console/scope", { question }));
  const box = $("scope-result");
  box.replaceChildren();
  if (!result) return;
  const fired = result.in_scope
    ? `Edit #${result.edit_id} would answer (score ${fmtScore(result.score)} ≥ threshold ${fmtScore(result.threshold)}).`
    : `No edit would fire: the best score ${fmtScore(result.score)} is below the threshold ${fmtScore(result.threshold)}; the base model answers.`;
  box.append(el("p", { class: "verdict", text: fired }));
  if (result.candidates.length) {
    box.append(scoreChart(result.candidates, result.threshold, result.edit_id));
    box.append(candidateTable(result.candidates, result.edit_id, `Top ${result.candidates.length} candidates (top-k ${result.top_k})`));
  }
  say("scope-status", "");
});

// -- conflicts ---------------------------------------------------------------------------------------
async function showConflicts(editId) {
  const result = await guarded("edits-status", () => api("GET", `/v1/console/edits/${editId}/conflicts`));
  if (!result) return;
  const panel = $("conflicts");
  const same = result.neighbours.filter((n) => n.same_fact && n.edit.id !== editId);
  const answering = result.answering_edit_id;
  let summary = `Edit #${editId}: “${result.edit.input}” → “${result.edit.target}”. `;
  const rule = `key similarity ≥ ${fmtScore(result.key_threshold)} and relation similarity ≥ ${fmtScore(result.same_fact_threshold)}`;
  summary += same.length
    ? `${same.length} other stored edit(s) count as the same fact (${rule}). `
    : `No other stored edit counts as the same fact (${rule}). `;
  summary += `Policy “${result.policy}”: asked this edit's own input, edit #${answering} answers` +
    (answering === editId ? "." : ` (“${result.answering_target}”), not this one.`);
  $("conflicts-title").textContent = `Conflicts for edit #${editId}`;
  $("conflicts-summary").textContent = summary;
  const body = $("conflicts-table").tBodies[0];
  body.replaceChildren();
  for (const n of result.neighbours) {
    body.append(
      el(
        "tr",
        { class: n.edit.id === answering ? "fired" : null, "data-edit-id": String(n.edit.id) },
        el("td", { text: String(n.edit.id) + (n.edit.id === editId ? " (this edit)" : "") }),
        el("td", { text: n.edit.input }),
        el("td", { text: n.edit.target }),
        el("td", { class: "num", text: fmtScore(n.score) }),
        el("td", { class: "num", text: fmtScore(n.relation_similarity) }),
        el("td", { text: n.same_fact ? "yes" : "no" }),
        el("td", { text: n.edit.id === answering ? "answers" : "" }),
      ),
    );
  }
  panel.hidden = false;
  panel.focus();
}
$("conflicts-close").addEventListener("click", () => {
  $("conflicts").hidden = true;
});

// -- add one, bulk add -------------------------------------------------------------------------------
$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { input: $("add-input").value, target: $("add-target").value };
  const meta = $("add-meta").value.trim();
  if (meta) {
    try {
      body.metadata = JSON.parse(meta);
    } catch (_) {
      say("add-status", 'Metadata must be a JSON object, e.g. {"author": "ana"}.', true);
      return;
    }
  }
  const done = await guarded("add-status", () => api("POST", "/v1/edits", body));
  if (!done) return;
  $("add-form").reset();
  state.offset = 0;
  await refreshAll();
  say("add-status", `Added edit #${done.data[0].id} (store version ${done.version}).`);
});

function fileFormat(name) {
  return name.toLowerCase().endsWith(".csv") ? "csv" : "jsonl";
}

$("bulk-file").addEventListener("change", () => {
  state.bulk = null;
  $("bulk-write").disabled = true;
  $("bulk-write").textContent = "Write edits";
  $("bulk-result").replaceChildren();
  say("bulk-status", "");
});

$("bulk-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("bulk-file").files[0];
  if (!file) return;
  const upload = { format: fileFormat(file.name), content: await file.text() };
  const report = await guarded("bulk-status", () => api("POST", "/v1/console/import", { ...upload, dry_run: true }));
  const box = $("bulk-result");
  box.replaceChildren();
  if (!report) return;
  const bad = report.errors.length;
  box.append(el("p", { class: bad ? "verdict error" : "verdict", text:
    `${file.name}: ${report.rows} row(s), ${report.valid} valid, ${bad} with errors. ` +
    (bad ? "Nothing will be written until every row is valid." : "Ready to write as one version.") }));
  if (bad) {
    const body = el("tbody");
    for (const e of report.errors) body.append(el("tr", {}, el("td", { text: String(e.row) }), el("td", { text: e.message })));
    box.append(el("table", { class: "errors" }, el("caption", { text: "Rows with errors (nothing written)" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "row" }), el("th", { scope: "col", text: "problem" }))), body));
  }
  state.bulk = bad ? null : upload;
  $("bulk-write").disabled = Boolean(bad) || report.valid === 0;
  $("bulk-write").textContent = bad ? "Write edits" : `Write ${report.valid} edits`;
  say("bulk-status", "");
});

$("bulk-write").addEventListener("click", async () => {
  if (!state.bulk) return;
  const done = await guarded("bulk-status", () => api("POST", "/v1/console/import", { ...state.bulk, dry_run: false }));
  if (!done) return;
  state.bulk = null;
  $("bulk-write").disabled = true;
  $("bulk-form").reset();
  $("bulk-result").replaceChildren();
  state.offset = 0;
  await refreshAll();
  say("bulk-status", `Wrote ${done.data.length} edits as store version ${done.version}.`);
});

// -- ask ---------------------------------------------------------------------------------------------
$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("ask-status", "Asking…");
  const result = await guarded("ask-status", () => api("POST", "/v1/console/ask", { question: $("ask-q").value }));
  if (!result) return;
  const edited = result.edited;
  $("ask-base").textContent = result.base.text;
  $("ask-edited").textContent = edited.text;
  $("ask-edited-box").classList.toggle("changed", edited.source === "counterfactual");
  $("ask-source").textContent = edited.source === "counterfactual"
    ? "the counterfactual model, reading the edit"
    : "the base model (no edit in scope; the answer is the base model's own)";
  $("ask-edit").textContent = edited.edit
    ? `#${edited.edit.id}: “${edited.edit.input}” → “${edited.edit.target}”`
    : "none";
  $("ask-score").textContent = fmtScore(edited.score);
  $("ask-threshold").textContent = fmtScore(result.threshold);
  const chart = $("ask-chart");
  chart.replaceChildren();
  if (result.candidates.length) {
    chart.append(scoreChart(result.candidates, result.threshold, edited.edit_id));
    chart.append(candidateTable(result.candidates, edited.edit_id, "Top-k candidates"));
  }
  $("ask-result").hidden = false;
  say("ask-status", "");
});

// -- history -------------------------------------------------------------------------------------------
async function loadHistory() {
  if (!state.session) return;
  const params = new URLSearchParams({ offset: state.historyOffset, limit: HISTORY_PAGE });
  const page = await guarded("history-status", () => api("GET", "/v1/console/history?" + params));
  if (!page) return;
  const list = $("timeline");
  list.replaceChildren();
  for (const v of page.data) list.append(versionItem(v, page.current));
  if (!page.has_more) list.append(versionItem({ version: 0, op: "empty", note: "the empty store", edits: [], added: 0, removed: 0 }, page.current));
  $("history-newer").disabled = state.historyOffset === 0;
  $("history-older").disabled = !page.has_more;
  say("history-status", "");
}

function versionItem(v, current) {
  const title = v.version === 0 ? "Version 0: the empty store" : `Version ${v.version}: ${v.op}` + (v.note ? ` (${v.note})` : "");
  const item = el("li", { "data-version": String(v.version), class: "op-" + v.op },
    el("h3", { text: title }),
  );
  if (v.version > 0) {
    const counts = [v.added ? `+${v.added} added` : "", v.removed ? `−${v.removed} removed` : ""].filter(Boolean);
    item.append(el("p", { class: "when", text: [fmtTime(v.created_at), ...counts].join(" · ") }));
    const changes = el("ul", { class: "changes" });
    for (const e of v.edits) {
      changes.append(el("li", { class: e.op, text: `${e.op === "add" ? "+" : "−"} #${e.id} “${e.input}” → “${e.target}”` }));
    }
    const more = v.added + v.removed - v.edits.length;
    if (more > 0) changes.append(el("li", { text: `… and ${more} more` }));
    item.append(changes);
  }
  if (v.version === current) {
    item.append(el("p", { class: "current", text: "current version" }));
  } else if (canWrite()) {
    item.append(el("button", {
      type: "button",
      class: "danger",
      text: `Roll back to version ${v.version}`,
      onclick: () => rollback(v.version),
    }));
  }
  return item;
}

async function rollback(version) {
  const ok = await confirmAction(
    `Roll back to version ${version}? The live edits become exactly those live at version ${version}; ` +
      "this is recorded as a new version, so it can be undone.",
    `Roll back to version ${version}`,
  );
  if (!ok) return;
  const done = await guarded("history-status", () => api("POST", "/v1/edits/rollback", { version }));
  if (!done) return;
  state.historyOffset = 0;
  state.offset = 0;
  await refreshAll();
  say("history-status", `Rolled back to version ${version}: now version ${done.version}, ${done.count} live edits.`);
}

$("history-newer").addEventListener("click", () => {
  state.historyOffset = Math.max(0, state.historyOffset - HISTORY_PAGE);
  loadHistory();
});
$("history-older").addEventListener("click", () => {
  state.historyOffset += HISTORY_PAGE;
  loadHistory();
});

start();
