// ie-service playground. Every piece of data reaches the DOM through textContent (no HTML
// parsing of data); the page is served under a CSP that allows only this script and its stylesheet.
// A URL fragment presets the form: #task=ner&schema=person,location&text=...&min_confidence=0.5&run=1
// One request runs at a time: while it runs, Run is disabled, the elapsed time ticks and Cancel
// aborts the fetch (the service then aborts the engine's work, see api/disconnect.py). Each tab
// keeps its own last result (state.results); switching tabs shows that tab's, never another's.
"use strict";

const PALETTE = ["#8ecae6", "#ffb703", "#90be6d", "#f4a3c1", "#c3a6ff", "#f9844a", "#4cc9f0", "#e9c46a",
                 "#a8dadc", "#ff8fa3"];
const KEY_STORE = "ie-service-api-key";
const PRESETS = {
  ner: {
    English: {schema: ["person", "location", "organization"], text: "Barack Obama met Angela Merkel in Berlin."},
    中文: {schema: ["人物", "地点", "组织机构"], text: "马云在杭州创立了阿里巴巴。"},
  },
  re: {
    English: {schema: [{relation: "founded by", head_type: "organization", tail_type: "person"},
                       {relation: "headquartered in", head_type: "organization", tail_type: "location"}],
              text: "Microsoft was founded by Bill Gates. Microsoft is headquartered in Redmond."},
    中文: {schema: ["创始人", "总部地点"], text: "阿里巴巴由马云创立，总部位于杭州。"},
  },
  ee: {
    English: {schema: {acquisition: ["acquirer", "acquired company", "time"]},
              text: "Google acquired YouTube in 2006."},
    中文: {schema: {"质押": ["质押方", "质押物", "质权方"]},
           text: "2019年，张三将其持有的500万股公司股份质押给了招商银行。"},
  },
  generate: {
    English: {text: "What is the capital of France?"},
    中文: {text: "中国的首都是哪里？"},
  },
};
const HINTS = {
  ner: 'labels: person, location  ·  ["person", ...]  ·  {"person": "description"}',
  re: 'relations: founded by, located in  ·  [{"relation", "head_type", "tail_type"}]',
  ee: '{"event type": ["role", ...]}  ·  [{"event_type", "arguments": [...]}]',
};

const $ = (id) => document.getElementById(id);
const TASK_NAMES = {ner: "NER", re: "RE", ee: "EE", generate: "generate"};
// results: task → {state: "running" | "done" | "error" | "cancelled", status, error, data, text};
// running: the request in flight ({task, controller, started, timer}) or null.
const state = {task: "ner", templates: [], colors: new Map(), results: {}, running: null};

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function colorOf(type) {
  const key = type == null ? "(untyped)" : String(type);
  if (!state.colors.has(key)) state.colors.set(key, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(key);
}

function apiKey() {
  return $("api-key").value.trim();
}

function headers() {
  const h = {"content-type": "application/json"};
  if (apiKey()) h.authorization = "Bearer " + apiKey();
  return h;
}

async function call(method, path, body, signal) {
  const response = await fetch(path, {method, headers: headers(), signal, body: body === undefined ? undefined
    : JSON.stringify(body)});
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    let message = data && data.error;
    if (message && typeof message === "object") message = message.message;
    throw new Error("HTTP " + response.status + ": " + (message || response.statusText));
  }
  return data;
}

// --- the form ------------------------------------------------------------------------------

function parseSchema(raw, task) {
  const text = raw.trim();
  if (!text) throw new Error("the schema is empty");
  if (text[0] === "[" || text[0] === "{") {
    try { return JSON.parse(text); } catch (e) { throw new Error("the schema is not valid JSON: " + e.message); }
  }
  if (task === "ee") throw new Error('an EE schema is JSON: {"event type": ["role", ...]}');
  return text.split(/[,，\n]/).map((s) => s.trim()).filter(Boolean);
}

function schemaText(schema) {
  if (Array.isArray(schema) && schema.every((s) => typeof s === "string")) return schema.join(", ");
  return JSON.stringify(schema, null, 1);
}

// curl: the copied command asks the service for what the slider shows; the page itself
// asks for every record and filters them here, so the slider can go down again.
function request(curl = false) {
  const task = state.task;
  const parameters = {max_tokens: Number($("max-tokens").value), temperature: Number($("temperature").value)};
  if (task === "generate") {
    return {path: "/generate", body: {instruction: $("text").value, input: $("gen-input").value, parameters}};
  }
  const body = {text: $("text").value, schema: parseSchema($("schema").value, task),
                language: $("language").value, constrained: $("constrained").checked, parameters};
  if ($("template").value) body.template = $("template").value;
  const min = minConfidence();
  if (curl && min > 0) body.min_confidence = min;
  return {path: "/extract/" + task, body};
}

function fillTemplates() {
  const select = $("template");
  const keep = select.value;
  clear(select);
  select.appendChild(new Option("default", ""));
  for (const t of state.templates.filter((t) => t.task === state.task)) {
    select.appendChild(new Option(t.ref + " (" + t.language + ", " + t.style + ")", t.ref));
  }
  select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
}

function applyPreset(name) {
  const preset = (PRESETS[state.task] || {})[name];
  if (!preset) return;
  $("text").value = preset.text;
  if (preset.schema) $("schema").value = schemaText(preset.schema);
  $("language").value = name === "中文" ? "zh" : "en";
}

function selectTask(task, preset = true) {
  state.task = task;
  for (const b of document.querySelectorAll("#tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset.task === task));
  }
  const gen = task === "generate";
  $("generate-only").hidden = !gen;
  $("extract-only").hidden = gen;
  $("text-label").textContent = gen ? "Instruction" : "Text";
  $("schema-hint").textContent = HINTS[task] || "";
  $("max-tokens").value = gen ? 64 : 384;
  const select = $("preset");
  clear(select);
  for (const name of Object.keys(PRESETS[task])) select.appendChild(new Option(name, name));
  fillTemplates();
  if (preset) applyPreset(select.value);
  showResult();
}

// --- results -------------------------------------------------------------------------------

function minConfidence() {
  return Number($("min-confidence").value) || 0;
}

function confidenceText(record) {
  return record && typeof record.confidence === "number" ? record.confidence.toFixed(2) : "—";
}

// A record without a confidence (an engine that gave none) always passes, as on the server.
function passes(record, min) {
  return !record || typeof record.confidence !== "number" || record.confidence >= min;
}

// The records at or above the slider's threshold (an event keeps its arguments above it);
// the slider filters the last answer here, no new request.
function filtered(data, min) {
  if (!(min > 0)) return {data, hidden: 0};
  const out = {...data};
  let hidden = 0;
  const keep = (list) => (list || []).filter((r) => passes(r, min) || (hidden++, false));
  if (data.entities) out.entities = keep(data.entities);
  if (data.triples) out.triples = keep(data.triples);
  if (data.events) out.events = keep(data.events).map((ev) => ({...ev, arguments: keep(ev.arguments)}));
  return {data: out, hidden};
}

function spansOf(task, data) {
  const spans = [];
  const add = (span, type, label) => {
    if (span && span.grounded && Number.isInteger(span.start) && Number.isInteger(span.end)) {
      spans.push({start: span.start, end: span.end, type, label, grounded: span.grounded,
                  confidence: span.confidence});
    }
  };
  if (task === "ner") for (const e of data.entities || []) add(e, e.type, e.type);
  if (task === "re") {
    for (const t of data.triples || []) {
      add(t.head, t.head.type || "head", (t.head.type || "head") + " · head of " + t.relation);
      add(t.tail, t.tail.type || "tail", (t.tail.type || "tail") + " · tail of " + t.relation);
    }
  }
  if (task === "ee") {
    for (const ev of data.events || []) {
      add(ev.trigger, ev.type, ev.type + " · trigger");
      for (const a of ev.arguments || []) add(a, a.role, a.role + " · " + ev.type);
    }
  }
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  return spans;
}

function ungroundedOf(task, data) {
  const out = [];
  const check = (span, type) => { if (span && !span.grounded) out.push(type + ": " + span.text); };
  for (const e of data.entities || []) check(e, e.type);
  for (const t of data.triples || []) { check(t.head, "head"); check(t.tail, "tail"); }
  for (const ev of data.events || []) {
    check(ev.trigger, ev.type);
    for (const a of ev.arguments || []) check(a, a.role);
  }
  return out;
}

function renderHighlight(text, spans) {
  const box = $("highlight");
  clear(box);
  let at = 0;
  for (const s of spans) {
    if (s.start < at || s.end > text.length) continue;  // overlaps an earlier span: tables show it
    if (s.start > at) box.appendChild(document.createTextNode(text.slice(at, s.start)));
    const mark = el("mark", text.slice(s.start, s.end), "span");
    mark.style.backgroundColor = colorOf(s.type);
    mark.dataset.type = String(s.type);
    mark.dataset.start = String(s.start);
    mark.dataset.end = String(s.end);
    if (typeof s.confidence === "number") mark.dataset.confidence = s.confidence.toFixed(4);
    mark.title = s.label + "\n[" + s.start + ", " + s.end + ")  grounded: " + s.grounded +
      "  confidence: " + confidenceText(s);
    box.appendChild(mark);
    at = s.end;
  }
  if (at < text.length) box.appendChild(document.createTextNode(text.slice(at)));
}

function renderLegend(spans) {
  const legend = $("legend");
  clear(legend);
  const types = [...new Set(spans.map((s) => String(s.type)))];
  for (const type of types) {
    const item = el("span", null, "legend-item");
    const swatch = el("span", null, "swatch");
    swatch.style.backgroundColor = colorOf(type);
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(type));
    legend.appendChild(item);
  }
}

function entityCell(entity) {
  const td = el("td");
  td.appendChild(el("span", entity.text, entity.grounded ? "" : "ungrounded"));
  if (entity.type) td.appendChild(el("span", " " + entity.type, "type"));
  td.title = entity.grounded ? "[" + entity.start + ", " + entity.end + ")" : "not found in the text";
  return td;
}

function renderEntities(entities) {
  const table = $("entities");
  const body = table.tBodies[0];
  clear(body);
  table.hidden = !entities;
  for (const e of entities || []) {
    const row = el("tr");
    row.appendChild(el("td", e.text, e.grounded ? "" : "ungrounded"));
    row.appendChild(el("td", e.type, "type"));
    row.appendChild(el("td", confidenceText(e), "conf"));
    body.appendChild(row);
  }
  if (entities && !entities.length) {
    const row = el("tr");
    const td = el("td", "no entities");
    td.colSpan = 3;
    row.appendChild(td);
    body.appendChild(row);
  }
}

function renderTriples(triples) {
  const table = $("triples");
  const body = table.tBodies[0];
  clear(body);
  table.hidden = !triples;
  for (const t of triples || []) {
    const row = el("tr");
    row.appendChild(entityCell(t.head));
    row.appendChild(el("td", t.relation, "relation"));
    row.appendChild(entityCell(t.tail));
    row.appendChild(el("td", confidenceText(t), "conf"));
    body.appendChild(row);
  }
  if (triples && !triples.length) {
    const row = el("tr");
    const td = el("td", "no triples");
    td.colSpan = 4;
    row.appendChild(td);
    body.appendChild(row);
  }
}

function renderEvents(events) {
  const box = $("events");
  clear(box);
  for (const ev of events || []) {
    const card = el("div", null, "event");
    const title = el("h3", ev.type);
    title.appendChild(el("span", confidenceText(ev), "conf"));
    title.style.borderColor = colorOf(ev.type);
    card.appendChild(title);
    const dl = el("dl");
    dl.appendChild(el("dt", "trigger"));
    dl.appendChild(el("dd", ev.trigger ? ev.trigger.text : "—"));
    for (const a of ev.arguments || []) {
      dl.appendChild(el("dt", a.role));
      const dd = el("dd", a.text, a.grounded ? "" : "ungrounded");
      dd.appendChild(el("span", " " + confidenceText(a), "conf"));
      dl.appendChild(dd);
    }
    card.appendChild(dl);
    box.appendChild(card);
  }
  if (events && !events.length) box.appendChild(el("p", "no events"));
}

function clearResult() {
  $("status").textContent = "";
  $("status").className = "";
  $("error").textContent = "";
  $("confidence-filter").hidden = true;
  clear($("legend"));
  clear($("highlight"));
  renderEntities(null);
  renderTriples(null);
  renderEvents(null);
  $("generated").hidden = true;
  $("generated").textContent = "";
  clear($("warnings"));
  $("stats").textContent = "";
  $("raw").textContent = "";
}

// The results area shows the current tab's own last result (or nothing), never another tab's.
function showResult() {
  const task = state.task;
  const result = state.results[task];
  $("results").dataset.task = task;
  $("results").dataset.state = result ? result.state : "empty";
  clearResult();
  if (!result) return;
  $("status").textContent = result.status || "";
  if (result.state === "cancelled") $("status").className = "cancelled";
  $("error").textContent = result.error || "";
  if (result.state === "done") renderResult(task, result.text, result.data);
}

function renderResult(task, text, data) {
  state.colors = new Map();
  $("raw").textContent = JSON.stringify(data, null, 2);
  $("confidence-filter").hidden = task === "generate";
  if (task === "generate") {
    $("generated").hidden = false;
    $("generated").textContent = data.generated_text;
    $("stats").textContent = data.num_output_tokens_cf + " tokens · finish: " + data.finish_reason;
    return;
  }
  renderRecords();
  const s = data.stats || {};
  $("stats").textContent = "template " + data.template + " · language " + data.language + " · " +
    ["prompts", "chunks", "output_tokens", "truncated", "unparseable", "ungrounded"]
      .map((k) => k + " " + (s[k] ?? 0)).join(" · ");
  if (data.raw_output) $("raw").textContent = data.raw_output.join("\n---\n") + "\n\n" + JSON.stringify(data, null, 2);
}

// The parts of the last answer that the confidence slider filters.
function renderRecords() {
  const task = state.task;
  const result = state.results[task];
  if (!result || result.state !== "done" || task === "generate") return;
  const min = minConfidence();
  $("min-confidence-value").textContent = min.toFixed(2);
  const {data, hidden} = filtered(result.data, min);
  $("hidden-count").textContent = hidden ? hidden + " below the threshold hidden" : "";
  const spans = spansOf(task, data);
  renderHighlight(result.text, spans);
  renderLegend(spans);
  renderEntities(task === "ner" ? data.entities || [] : null);
  renderTriples(task === "re" ? data.triples || [] : null);
  renderEvents(task === "ee" ? data.events || [] : null);
  const warnings = $("warnings");
  clear(warnings);
  for (const w of data.warnings || []) warnings.appendChild(el("li", w));
  for (const u of ungroundedOf(task, data)) warnings.appendChild(el("li", "not in the text: " + u));
}

function seconds(ms) {
  return (ms / 1000).toFixed(1) + " s";
}

// The running request's ticking clock, next to Run / Cancel (seen from every tab).
function tick() {
  const r = state.running;
  if (!r) return;
  const elapsed = seconds(performance.now() - r.started);
  $("elapsed").textContent = TASK_NAMES[r.task] + " running · " + elapsed;
  if (state.task === r.task) $("status").textContent = "running… " + elapsed;
}

function setRunning(running) {
  state.running = running;
  $("run").disabled = !!running;
  $("cancel").hidden = !running;
  $("cancel").disabled = !running;
  $("elapsed").hidden = !running;
  if (running) {
    running.timer = setInterval(tick, 100);
    tick();
  }
}

// Stores the outcome of a request for ``task``; shown at once if its tab is the current one.
function settle(task, result, status) {
  state.results[task] = result;
  document.body.dataset.status = status;
  if (state.task === task) showResult();
}

async function run() {
  if (state.running) return;  // one request at a time (Run is disabled meanwhile)
  const task = state.task;
  let req;
  try {
    req = request();
  } catch (e) {
    settle(task, {state: "error", error: e.message}, "error");
    return;
  }
  const text = $("text").value;
  const running = {task, controller: new AbortController(), started: performance.now(), timer: null};
  state.results[task] = {state: "running", status: "running…"};
  if (state.task === task) showResult();
  document.body.dataset.status = "running";
  setRunning(running);
  let result, status;
  try {
    const data = await call("POST", req.path, req.body, running.controller.signal);
    result = {state: "done", status: "done in " + seconds(performance.now() - running.started), data, text};
    status = "done";
  } catch (e) {
    if (running.controller.signal.aborted) {
      result = {state: "cancelled", status: "cancelled after " + seconds(performance.now() - running.started)};
      status = "cancelled";
    } else {
      result = {state: "error", error: e.message};
      status = "error";
    }
  } finally {
    clearInterval(running.timer);
    setRunning(null);
  }
  settle(task, result, status);
}

function cancel() {
  if (state.running) state.running.controller.abort();
}

function shellQuote(s) {
  return "'" + s.replace(/'/g, "'\\''") + "'";
}

function curlCommand() {
  const req = request(true);
  const parts = ["curl -s " + shellQuote(location.origin + req.path), "-H 'content-type: application/json'"];
  if (apiKey()) parts.push("-H \"authorization: Bearer $IE_API_KEY\"");
  parts.push("-d " + shellQuote(JSON.stringify(req.body)));
  return parts.join(" \\\n  ");
}

async function copyCurl() {
  const box = $("curl");
  try {
    box.textContent = curlCommand();
  } catch (e) {
    $("error").textContent = e.message;
    return;
  }
  box.hidden = false;
  try {
    await navigator.clipboard.writeText(box.textContent);
    $("status").textContent = "curl command copied";
  } catch (e) {
    $("status").textContent = "select the command below to copy it";
  }
}

async function loadServiceInfo() {
  try {
    const models = await call("GET", "/v1/models");
    $("model").textContent = models.data.map((m) => m.id).join(", ");
    state.templates = (await call("GET", "/templates")).templates;
    fillTemplates();
  } catch (e) {
    $("model").textContent = "";
    $("error").textContent = e.message.startsWith("HTTP 401") ? "enter the API key to use this service" : e.message;
  }
}

function init() {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, apiKey());
    loadServiceInfo();
  });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => selectTask(b.dataset.task));
  $("preset").addEventListener("change", () => applyPreset($("preset").value));
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  $("copy-curl").addEventListener("click", copyCurl);
  $("min-confidence").addEventListener("input", renderRecords);
  const params = new URLSearchParams(location.hash.slice(1));
  const task = params.get("task");
  selectTask(PRESETS[task] ? task : "ner");
  for (const [name, id] of [["text", "text"], ["schema", "schema"], ["input", "gen-input"],
                            ["language", "language"], ["max_tokens", "max-tokens"],
                            ["min_confidence", "min-confidence"]]) {
    if (params.has(name)) $(id).value = params.get(name);
  }
  document.body.dataset.status = "ready";
  const info = loadServiceInfo();
  if (params.get("run") === "1") info.then(run);
}

init();
