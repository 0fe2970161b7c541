// report.js: the interactive part of report.html. Plain JavaScript, no library, no network.
// Reads the run from the JSON in <script id="run-data"> (written by classifier/render/html.py):
//   heads[k]   one head (k = layer * n_heads + head): label, role, numbers, pairs
//   texts[t]   the prompt and a few corpus stories: tokens, and every head's pattern as the
//              lower triangle of A (row i holds A[i, 0..i]) in uint8 (weight * 255), base64.
// Views: a thumbnail per head (click to select), the selected head's card, its attention over
// the tokens (pick a query and see where it attends, or a key and see who attends to it), its
// full pattern, the sortable role table. Keys: arrows step heads and layers, [ ] step tokens.
const DATA = JSON.parse(document.getElementById("run-data").textContent);
const N_HEADS = DATA.model.n_heads;
const state = { head: 0, text: 0, mode: "query", token: null, hover: null, relative: false, sort: null };

function decode(b64) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}
const TEXTS = DATA.texts.map((t) => {
  const n = t.tokens.length;
  return { ...t, n, tri: (n * (n + 1)) / 2, bytes: decode(t.patterns) };
});

// A[i, j] of head k on text t (0 above the diagonal: a query never sees later keys).
function weight(t, k, i, j) {
  return j > i ? 0 : t.bytes[k * t.tri + (i * (i + 1)) / 2 + j] / 255;
}

const roleColor = (role) => DATA.role_colors[role] || "#888";
function shown(token) {
  return token.replace(/\n/g, "↵\n");
}
// A token in running text: brackets show its spaces, a newline is ↵.
const quoted = (token) => `⟨${token.replace(/\n/g, "↵")}⟩`;

// White to dark blue; the ink turns white on dark cells.
function shade(w) {
  const a = Math.max(0, Math.min(1, w));
  return [255 - a * 247, 255 - a * 207, 255 - a * 148];
}

// ---- overview: one thumbnail per head on the current text
function drawPattern(canvas, t, k, cell, mark) {
  const n = t.n;
  canvas.width = n * cell;
  canvas.height = n * cell;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const p = 4 * (i * n + j);
      const [r, g, b] = j > i ? [243, 244, 246] : shade(Math.sqrt(weight(t, k, i, j)));
      image.data[p] = r; image.data[p + 1] = g; image.data[p + 2] = b; image.data[p + 3] = 255;
    }
  }
  if (cell === 1) { ctx.putImageData(image, 0, 0); return; }
  const small = el("canvas");
  small.width = n; small.height = n;
  small.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, n * cell, n * cell);
  if (mark !== null) {
    ctx.strokeStyle = "#d6604d";
    ctx.lineWidth = 2;
    if (state.mode === "query") ctx.strokeRect(1, mark * cell, n * cell - 2, cell);
    else ctx.strokeRect(mark * cell, 1, cell, n * cell - 2);
  }
}

function buildOverview() {
  const grid = document.getElementById("overview");
  grid.innerHTML = "";
  const columns = Math.min(N_HEADS, 8);
  const layered = DATA.model.n_layers > 1;
  grid.style.gridTemplateColumns = (layered ? "28px " : "") + `repeat(${columns}, minmax(0, 1fr))`;
  DATA.heads.forEach((h, k) => {
    if (layered && h.head % columns === 0) grid.append(el("div", { class: "layer-label" }, h.head === 0 ? `L${h.layer}` : ""));
    const canvas = el("canvas");
    const share = h.explained_text;
    const cap = el("div", { class: "cap" }, el("b", {}, h.label), share ? ` ${share}` : "", el("br"),
      el("span", { style: `color:${roleColor(h.role)}` }, h.code));
    const title = `${h.label}: ${h.role_label}` + (share ? `, explains ${share} of attention` : "")
      + (h.ablation_title ? `; ${h.ablation_title}` : "");
    // Shaded by ablation (the darker, the more the loss rises without the head), as rounded by Python.
    const shadeStyle = h.ablation_shade ? `background:rgba(214,96,77,${(0.6 * h.ablation_shade).toFixed(3)})` : "";
    const box = el("div", { class: "thumb", "data-k": k, title, style: shadeStyle, onclick: () => select(k) }, canvas, cap);
    grid.append(box);
  });
  drawOverview();
}

function drawOverview() {
  const t = TEXTS[state.text];
  document.querySelectorAll("#overview .thumb").forEach((box) => {
    const k = Number(box.dataset.k);
    drawPattern(box.querySelector("canvas"), t, k, 1, null);
    box.classList.toggle("selected", k === state.head);
  });
}

// ---- the selected head
function card() {
  const h = DATA.heads[state.head];
  const node = document.getElementById("card");
  node.innerHTML = "";
  const title = el("div", { class: "card-title" },
    el("span", { class: "name" }, `Head ${h.label}`),
    el("span", { class: "badge", style: `background:${roleColor(h.role)}` }, h.role_label || h.role));
  for (const s of h.secondary) title.append(el("span", { class: "badge small", style: `background:${roleColor(s)}` }, "+" + s));
  node.append(title);
  const facts = el("div", { class: "facts" });
  for (const [value, label] of [...h.facts, ...(h.importance_facts || [])]) facts.append(el("div", { class: "fact" }, el("b", {}, value), el("span", {}, label)));
  node.append(facts);
  if (h.similar && h.similar.length) {
    const similar = el("p", { class: "hint" }, "Most similar heads: ");
    h.similar.forEach(([k, label, value], i) => similar.append(i ? ", " : "", el("a", { href: "#explorer", onclick: (e) => { e.preventDefault(); select(k); } }, `${label} (${value.toFixed(2)})`)));
    node.append(similar);
  }
  if (h.budget) {
    const bar = el("div", { class: "budget", title: "Where this head's attention goes over the corpus" });
    const legend = el("div", { class: "legend" }, "attention budget:");
    for (const [part, share] of h.budget) {
      if (share < 0.005) continue;
      bar.append(el("div", { style: `width:${100 * share}%;background:${DATA.part_colors[part]}`, title: `${part} ${pct(share)}` }));
      if (share >= 0.03) legend.append(el("i", { style: `background:${DATA.part_colors[part]}` }), `${part} ${pct(share)}`);
    }
    node.append(bar, legend);
  }
  node.append(el("p", {}, h.description));
  if (h.prompt_role && h.prompt_role !== h.role) node.append(el("p", { class: "hint" }, `On the prompt alone: ${h.prompt_role}.`));
  if (h.top_keys && h.top_keys.length) {
    node.append(el("div", { class: "hint" }, "Top keys (BOS, itself and the previous token aside): share of its attention, lift over uniform:"));
    const keys = el("ul", { class: "pairs" });
    for (const [key, share, lift] of h.top_keys) keys.append(el("li", {}, el("code", {}, quoted(key)), ` ${share}, ${lift}`));
    node.append(keys);
  }
  if (h.pairs.length) {
    node.append(el("div", { class: "hint" }, "Characteristic (query → key) pairs over the corpus: how often the key is the query token's top key, and its weight there:"));
    const list = el("ul", { class: "pairs" });
    for (const [q, key, share, kind, rate, weight] of h.pairs) {
      const numbers = rate !== null && rate !== undefined ? `top key of ${pct(rate)} of its queries, weight ${pct(weight)}` : pct(share);
      list.append(el("li", {}, el("code", {}, quoted(q)), " → ", el("code", {}, quoted(key)), kind ? ` (${kind}) ${numbers}` : ` ${numbers}`));
    }
    node.append(list);
  }
}

// ---- tokens: colour every token by its weight from (or to) the focused token
function focusToken() {
  return state.hover !== null ? state.hover : state.token;
}

function tokens() {
  const t = TEXTS[state.text];
  const node = document.getElementById("tokens");
  const focus = focusToken();
  const spans = node.querySelectorAll(".tok");
  const weights = spans.length ? Array.from(spans, (_, x) => {
    if (state.mode === "query") return x <= focus ? weight(t, state.head, focus, x) : null;
    return x >= focus ? weight(t, state.head, x, focus) : null;
  }) : [];
  // Relative colours: scaled to the largest weight not on BOS (sinks otherwise wash out the rest).
  const top = state.relative ? Math.max(1e-9, ...weights.filter((w, x) => w !== null && x > 0)) : 1;
  spans.forEach((span, x) => {
    const w = weights[x];
    span.classList.toggle("focus", x === focus);
    span.classList.toggle("later", w === null);
    if (w === null) { span.style.background = ""; span.style.color = ""; span.title = ""; return; }
    const [r, g, b] = shade(Math.min(1, w / top));
    span.style.background = `rgb(${r},${g},${b})`;
    span.style.color = w / top > 0.55 ? "#fff" : "";
    span.title = state.mode === "query" ? `${pct(w)} of token ${focus}'s attention` : `token ${x} gives it ${pct(w)}`;
  });
  document.getElementById("readout").innerHTML = "";
  const name = (x) => (x === 0 ? "BOS" : quoted(t.tokens[x]));
  const ranked = weights.map((w, x) => [w, x]).filter(([w]) => w !== null && w >= 0.005).sort((a, b) => b[0] - a[0]).slice(0, 5);
  const list = ranked.map(([w, x]) => `${name(x)}@${x} ${pct(w)}`).join(", ") || "nothing above 0.5%";
  document.getElementById("readout").append(
    state.mode === "query" ? "Query " : "Key ", el("b", {}, `${name(focus)}@${focus}`),
    state.mode === "query" ? " attends to " : " is attended by ", list);
  drawPattern(document.getElementById("pattern"), t, state.head, Math.max(2, Math.floor(400 / t.n)), focus);
}

function buildTokens() {
  const t = TEXTS[state.text];
  const node = document.getElementById("tokens");
  node.innerHTML = "";
  t.tokens.forEach((token, x) => {
    const span = el("span", { class: "tok" + (x === 0 ? " bos" : ""), "data-x": x }, x === 0 ? "BOS" : shown(token));
    span.addEventListener("mouseenter", () => { state.hover = x; tokens(); });
    span.addEventListener("click", () => { state.token = x; state.hover = null; tokens(); });
    node.append(span);
  });
  node.onmouseleave = () => { state.hover = null; tokens(); };
  if (state.token === null || state.token >= t.n) state.token = t.n - 1;
  tokens();
}

// Clicking the pattern picks the query row (query mode) or the key column (key mode).
function patternClick(event) {
  const canvas = event.currentTarget;
  const box = canvas.getBoundingClientRect();
  const n = TEXTS[state.text].n;
  const i = Math.floor(((event.clientY - box.top) / box.height) * n);
  const j = Math.floor(((event.clientX - box.left) / box.width) * n);
  state.token = Math.max(0, Math.min(n - 1, state.mode === "query" ? i : j));
  tokens();
}

// ---- the role table, sortable by any column
function buildTable() {
  const table = document.getElementById("roles");
  const head = el("tr");
  DATA.columns.forEach(([key, title, kind], c) => {
    head.append(el("th", { class: kind === "text" ? "text" : "", "data-c": c, title: key, onclick: () => sortBy(c) }, title));
  });
  table.append(el("thead", {}, head), el("tbody"));
  fillTable();
}

function fillTable() {
  const body = document.querySelector("#roles tbody");
  body.innerHTML = "";
  let order = DATA.heads.map((_, k) => k);
  if (state.sort) {
    const [c, direction] = state.sort;
    const value = (k) => DATA.heads[k].row[c];
    order.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === null && y === null) return a - b;
      if (x === null) return 1;  // missing values last either way
      if (y === null) return -1;
      return (x < y ? -1 : x > y ? 1 : a - b) * direction;
    });
  }
  for (const k of order) {
    const h = DATA.heads[k];
    const tr = el("tr", { "data-head": k, class: k === state.head ? "selected" : "", onclick: () => { select(k); document.getElementById("explorer").scrollIntoView(); } });
    DATA.columns.forEach(([key, , kind], c) => {
      const v = h.row[c];
      // Every cell's text comes rounded from Python (the same strings as report.md); `row` only sorts.
      const text = h.cells[c] ?? (v === null ? "n/a" : String(v));
      const td = el("td", { class: kind === "text" ? "text" : "" }, text);
      if (key === "role") td.style.color = roleColor(h.role);
      tr.append(td);
    });
    body.append(tr);
  }
  document.querySelectorAll("#roles th").forEach((th) => {
    const on = state.sort && Number(th.dataset.c) === state.sort[0];
    th.classList.toggle("asc", Boolean(on && state.sort[1] > 0));
    th.classList.toggle("desc", Boolean(on && state.sort[1] < 0));
  });
}

function sortBy(c) {
  const kind = DATA.columns[c][2];
  const first = kind === "text" ? 1 : -1;  // text A-Z first, numbers largest first
  state.sort = state.sort && state.sort[0] === c ? [c, -state.sort[1]] : [c, first];
  fillTable();
}

// ---- selection and keys
function select(k) {
  state.head = (k + DATA.heads.length) % DATA.heads.length;
  card();
  if (TEXTS.length) tokens();
  document.querySelectorAll("#overview .thumb").forEach((box) => box.classList.toggle("selected", Number(box.dataset.k) === state.head));
  document.querySelectorAll("#roles tbody tr").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.head) === state.head));
}

function setText(t) {
  state.text = t;
  document.querySelectorAll("#texts button").forEach((b, x) => b.classList.toggle("on", x === t));
  document.getElementById("text-note").textContent = TEXTS[t].note;
  buildTokens();
  drawOverview();
}

function setMode(mode) {
  state.mode = mode;
  document.querySelectorAll("#modes button").forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
  tokens();
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest && event.target.closest("input, select, textarea")) return;
  const n = TEXTS.length ? TEXTS[state.text].n : 0;
  const moves = {
    ArrowRight: () => select(state.head + 1), ArrowLeft: () => select(state.head - 1),
    ArrowDown: () => select(state.head + N_HEADS), ArrowUp: () => select(state.head - N_HEADS),
    "]": () => { if (n) { state.token = Math.min(n - 1, state.token + 1); tokens(); } },
    "[": () => { if (n) { state.token = Math.max(0, state.token - 1); tokens(); } },
  };
  if (moves[event.key]) { moves[event.key](); event.preventDefault(); }
});

function init() {
  const tabs = document.getElementById("texts");
  TEXTS.forEach((t, x) => tabs.append(el("button", { onclick: () => setText(x) }, t.name)));
  document.querySelectorAll("#modes button").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  document.getElementById("relative").addEventListener("change", (e) => { state.relative = e.target.checked; tokens(); });
  document.getElementById("pattern").addEventListener("click", patternClick);
  document.querySelectorAll("[data-head]").forEach((node) => node.addEventListener("click", () => {
    select(Number(node.dataset.head));
    document.getElementById("explorer").scrollIntoView();
  }));
  buildTable();
  card();
  if (TEXTS.length) { buildOverview(); setText(0); }
  document.body.dataset.ready = "yes";
}

init();
