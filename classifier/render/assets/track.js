// track.js: the interactive part of track.html. Plain JavaScript, no library, no network.
// Reads the track from the JSON in <script id="track-data"> (written by classifier/track/html.py):
//   roles[name]        code, colour, headline metric (and whether it is a share of attention)
//   models[m]          one training run (or a lone model): heads[k] (k = layer * n_heads + head,
//                      label), checkpoints[c] (name, step), cells[c][k] = [role, explained, lift,
//                      headline, confidence, ablation, attribution, code as written (`DELIM*` in doubt)] or null, matches[c][k] = [head, role, similarity]
//                      or null, settled[k] = {final, settled, first, changes} or null.
// Views: the role grid at the chosen checkpoint, the role counts there, the clicked head's
// history over every checkpoint. Keys: left / right step the checkpoint, Home / End jump.
const DATA = JSON.parse(document.getElementById("track-data").textContent);
const state = { model: 0, checkpoint: 0, head: 0 };

const role = (name) => DATA.roles[name] || { code: name, color: "#8c8c8c", headline: null, share: false };
const model = () => DATA.models[state.model];
const stepName = (c) => (c.step === null ? c.name : `step ${c.step}`);
const badge = (name) => el("span", { class: "badge", style: `background:${role(name).color}` }, name);

// The role's colour blended with white by the share explained (full colour when there is none);
// `full` is the role's own colour, kept as a stripe so that pale cells still show their role.
function cellColour(name, explained) {
  const hex = role(name).color;
  const a = explained === null ? 1 : Math.max(DATA.min_shade, Math.min(1, explained));
  const rgb = [1, 3, 5].map((i) => Math.round(255 - a * (255 - parseInt(hex.slice(i, i + 2), 16))));
  const light = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255 > 0.6;
  return { background: `rgb(${rgb.join(",")})`, color: light ? "#1d2330" : "#fff", full: hex };
}

function headline(cell) {
  const r = role(cell[0]);
  if (!r.headline || cell[3] === null) return "";
  return `${r.headline} ${r.share ? pct(cell[3]) : cell[3].toFixed(2)}`;
}

// ---- the grid: one cell per head, rows are layers (at most 8 heads to a row)
function buildGrid() {
  const m = model();
  const grid = document.getElementById("grid");
  grid.innerHTML = "";
  const columns = Math.min(m.n_heads, 8);
  grid.style.gridTemplateColumns = `30px repeat(${columns}, minmax(0, 1fr))`;
  m.heads.forEach((h, k) => {
    if (h.head % columns === 0) grid.append(el("div", { class: "layer-label" }, h.head === 0 ? `L${h.layer}` : ""));
    grid.append(el("button", { class: "cell", "data-k": k, onclick: () => selectHead(k) },
      el("b", {}, ""), el("span", {}, h.label)));
  });
}

function drawGrid() {
  const m = model();
  const cells = m.cells[state.checkpoint];
  document.querySelectorAll("#grid .cell").forEach((node) => {
    const k = Number(node.dataset.k);
    const cell = cells[k];
    node.classList.toggle("selected", k === state.head);
    if (cell === null) {
      node.querySelector("b").textContent = "–";
      node.style.background = "#fff"; node.style.color = ""; node.style.boxShadow = "";
      node.title = `${m.heads[k].label}: not in this checkpoint`;
      return;
    }
    const [name, explained, , , confidence] = cell;
    node.querySelector("b").textContent = cell[7];  // written by Python (classifier.formatting.written_role)
    const colour = cellColour(name, explained);
    node.style.background = colour.background; node.style.color = colour.color;
    node.style.boxShadow = `inset 5px 0 0 ${colour.full}`;
    node.title = `${m.heads[k].label}: ${name}` + (explained === null ? "" : `, explains ${pct(explained)} of attention`)
      + (confidence === null ? "" : `, confidence ${pct(confidence)}`);
  });
}

// ---- role counts at the checkpoint: every role the model has at some checkpoint
function counts() {
  const m = model();
  const count = (c) => {
    const n = {};
    for (const cell of m.cells[c]) if (cell !== null) n[cell[0]] = (n[cell[0]] || 0) + 1;
    return n;
  };
  const now = count(state.checkpoint);
  const before = state.checkpoint > 0 ? count(state.checkpoint - 1) : null;
  const present = Object.keys(DATA.roles).filter((name) => m.cells.some((cells) => cells.some((c) => c !== null && c[0] === name)));
  const total = m.cells[state.checkpoint].filter((c) => c !== null).length;
  const table = document.getElementById("counts");
  table.innerHTML = "";
  table.append(el("thead", {}, el("tr", {}, el("th", { class: "text" }, "Role"), el("th", { class: "text" }, "Code"),
    el("th", {}, "Heads"), el("th", {}, "Share"),
    ...(m.checkpoints.length > 1 ? [el("th", {}, before ? `vs ${stepName(m.checkpoints[state.checkpoint - 1])}` : "Change")] : []))));
  const body = el("tbody");
  for (const name of present) {
    const n = now[name] || 0;
    const change = before ? n - (before[name] || 0) : null;
    body.append(el("tr", { class: n ? "" : "none" }, el("td", { class: "text" }, badge(name)),
      el("td", { class: "text mono" }, role(name).code), el("td", {}, String(n)), el("td", {}, pct(total ? n / total : null)),
      ...(m.checkpoints.length > 1 ? [el("td", {}, change === null ? "" : change > 0 ? `+${change}` : change < 0 ? `−${-change}` : "·")] : [])));
  }
  table.append(body);
}

// ---- the selected head over every checkpoint
function settledSentence(s) {
  if (s === null) return model().checkpoints.length === 1 ? "One checkpoint: no training history to follow." : "";
  if (s.final === "unclear") return `No clear role at the last checkpoint (unclear from step ${s.settled} on).`;
  let text = `Final role ${s.final}: first at step ${s.first}, holds from step ${s.settled} on`;
  if (s.first < s.settled) text += " (it had it earlier, lost it and came back)";
  return text + `; ${s.changes} role change${s.changes === 1 ? "" : "s"} over ${model().checkpoints.length} checkpoints.`;
}

const nats = (x) => (x === null || !isFinite(x) ? "n/a" : x.toFixed(3));

function history() {
  const m = model();
  const k = state.head;
  const h = m.heads[k];
  const node = document.getElementById("history");
  node.innerHTML = "";
  const cell = m.cells[state.checkpoint][k];
  node.append(el("div", { class: "card-title" }, el("span", { class: "name" }, `Head ${h.label}`),
    cell ? badge(cell[0]) : el("span", { class: "hint" }, "not in this checkpoint"),
    el("span", { class: "hint" }, `at ${stepName(m.checkpoints[state.checkpoint])}`)));
  node.append(el("p", { class: "settled" }, settledSentence(m.settled[k])));
  const strip = el("div", { class: "strip", title: "Role at each checkpoint (click to go there)" });
  m.checkpoints.forEach((c, x) => {
    const at = m.cells[x][k];
    const colour = at ? cellColour(at[0], at[1]) : { background: "#fff", color: "", full: "#fff" };
    strip.append(el("div", { class: x === state.checkpoint ? "current" : "",
      style: `background:${colour.background};color:${colour.color};box-shadow:inset 0 -4px 0 ${colour.full}`,
      title: `${stepName(c)}: ${at ? at[0] : "absent"}`, onclick: () => setCheckpoint(x) }, at ? at[7] : "–"));
  });
  node.append(strip);
  // Explained and lift only where the role rule gives them for some head of this model.
  const columns = [["Explained", (at) => pct(at[1]), 1], ["Lift", (at) => times(at[2]), 2],
    ["Headline", headline, 3], ["Confidence", (at) => pct(at[4]), 4],
    ["Ablation (nats)", (at) => nats(at[5]), 5], ["Attribution", (at) => nats(at[6]), 6]]
    .filter(([, , x]) => m.cells.some((cells) => cells.some((c) => c !== null && c[x] !== null)));
  const table = el("table", { class: "history" });
  table.append(el("thead", {}, el("tr", {}, el("th", { class: "text" }, "Step"), el("th", { class: "text" }, "Role"),
    ...columns.map(([title]) => el("th", {}, title)))));
  const body = el("tbody");
  m.checkpoints.forEach((c, x) => {
    const at = m.cells[x][k];
    const row = el("tr", { class: x === state.checkpoint ? "current" : "", "data-c": x, onclick: () => setCheckpoint(x) },
      el("td", { class: "text" }, c.step === null ? c.name : String(c.step)));
    if (at === null) row.append(el("td", { class: "text", colspan: columns.length + 1 }, "absent"));
    else row.append(el("td", { class: "text" }, badge(at[0])), ...columns.map(([, show]) => el("td", {}, show(at))));
    body.append(row);
  });
  table.append(body);
  node.append(el("div", { class: "scroll" }, table));
  const match = m.matches[state.checkpoint][k];
  const against = m.checkpoints[state.checkpoint].compared_with;
  if (match) {
    node.append(el("p", { class: "hint" }, `Matched by metric profile with head ${match[0]} of ${against}`,
      match[1] ? ` (${match[1]})` : "", match[2] === null ? "" : `, similarity ${match[2].toFixed(2)}.`));
  } else if (against && m.checkpoints[state.checkpoint].match === "similarity") {
    node.append(el("p", { class: "hint" }, `Not matched with any head of ${against} (no pair similar enough).`));
  }
  node.append(el("p", { class: "hint" }, "Explained: share of attention the role accounts for; lift: that share over uniform "
    + "attention's; headline: the role's headline metric; confidence: share of bootstrap resamples giving the role "
    + "(columns no head of this model has are left out); ablation: loss increase when the head is mean-ablated, "
    + "attribution: its one-pass estimate. Click a row or the strip to go to that checkpoint."));
}

// ---- moving around
function setCheckpoint(c) {
  const m = model();
  state.checkpoint = Math.max(0, Math.min(m.checkpoints.length - 1, c));
  const checkpoint = m.checkpoints[state.checkpoint];
  document.getElementById("step").value = state.checkpoint;
  document.getElementById("step-label").textContent = `${stepName(checkpoint)} · checkpoint ${state.checkpoint + 1} of ${m.checkpoints.length}`
    + (checkpoint.step === null ? "" : ` · ${checkpoint.name}`);
  drawGrid();
  counts();
  history();
}

function selectHead(k) {
  state.head = k;
  drawGrid();
  history();
}

function setModel(x) {
  state.model = x;
  state.head = Math.min(state.head, model().heads.length - 1);
  const slider = document.getElementById("step");
  slider.max = model().checkpoints.length - 1;
  const single = model().checkpoints.length === 1;
  for (const id of ["step", "previous", "next"]) document.getElementById(id).disabled = single;
  buildGrid();
  setCheckpoint(model().checkpoints.length - 1);  // the trained model first; Home goes back to the start
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  const last = model().checkpoints.length - 1;
  const moves = {
    ArrowRight: () => setCheckpoint(state.checkpoint + 1), ArrowLeft: () => setCheckpoint(state.checkpoint - 1),
    Home: () => setCheckpoint(0), End: () => setCheckpoint(last),
  };
  if (moves[event.key]) { moves[event.key](); event.preventDefault(); }
});

function init() {
  const select = document.getElementById("model");
  DATA.models.forEach((m, x) => select.append(el("option", { value: x },
    `${m.name} (${m.n_layers} x ${m.n_heads}, ${m.checkpoints.length} checkpoint${m.checkpoints.length === 1 ? "" : "s"})`)));
  select.addEventListener("change", () => setModel(Number(select.value)));
  if (DATA.models.length < 2) document.getElementById("model-choice").hidden = true;
  document.getElementById("step").addEventListener("input", (e) => setCheckpoint(Number(e.target.value)));
  document.getElementById("previous").addEventListener("click", () => setCheckpoint(state.checkpoint - 1));
  document.getElementById("next").addEventListener("click", () => setCheckpoint(state.checkpoint + 1));
  document.getElementById("low-confidence").textContent = pct(DATA.low_confidence);
  if (DATA.models.length) setModel(0);
  else document.getElementById("stepper").append(el("p", {}, "No model was tracked."));
  document.body.dataset.ready = "yes";
}

init();
