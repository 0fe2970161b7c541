// common.js: helpers shared by report.js and track.js, inlined into each page before its own script.
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
const pct = (x) => (x === null || !isFinite(x) ? "n/a" : x > 0 && x < 0.005 ? "<1%" : `${Math.round(100 * x)}%`);
const times = (x) => (x === null || !isFinite(x) ? "n/a" : x >= 10 ? `${x.toFixed(0)}x` : `${x.toFixed(1)}x`);
