// The keras-nmt page: translate a sentence with POST /translate and show its
// attention map. Plain browser JavaScript, no build step, no dependency.
//
// Highlighting: for target token i, source token j gets the weight
// attention[i][j]; for source token j, target token i gets attention[i][j].
// Each highlighted token carries the weight in `data-weight` and as the
// alpha of its background colour.
"use strict";

const HIGHLIGHT = [37, 99, 235]; // the colour of attention, as RGB

const $ = (id) => document.getElementById(id);

const state = {
  result: null, // the last translation, with source_tokens, target_tokens, attention
  pinned: null, // {side, index} chosen by a tap or click, or null
};

function methodChosen() {
  return document.querySelector('input[name="method"]:checked').value;
}

function showBeamOptions() {
  const beam = methodChosen() === "beam";
  for (const element of document.querySelectorAll(".beam-only")) {
    element.classList.toggle("disabled", !beam);
    element.querySelector("input").disabled = !beam;
  }
}

function showError(message) {
  const error = $("error");
  error.textContent = message;
  error.hidden = !message;
}

function formatScore(score) {
  return score === null ? "n/a" : score.toFixed(4);
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    const health = await response.json();
    $("model").textContent =
      `Model ${health.model} · keras-nmt ${health.version}`;
    $("source").maxLength = health.limits.max_chars;
    $("beam-width").value = health.options.beam_width;
    $("n-best").value = health.options.n_best;
    if (health.options.method === "beam") {
      document.querySelector('input[value="beam"]').checked = true;
    }
  } catch (error) {
    $("model").textContent = "Could not reach the server.";
  }
  showBeamOptions();
}

async function translate(event) {
  event.preventDefault();
  const sentence = $("source").value.trim();
  if (!sentence) return;
  const request = { sentences: [sentence], method: methodChosen(), attention: true };
  if (request.method === "beam") {
    request.beam_width = Number($("beam-width").value);
    request.n_best = Number($("n-best").value);
  }
  const button = $("translate");
  button.disabled = true;
  document.body.classList.add("busy");
  try {
    const response = await fetch("/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    const answer = await response.json();
    if (!response.ok) {
      showError(answer.error || `Error ${response.status}`);
      return;
    }
    showError("");
    showResult(answer.translations[0]);
  } catch (error) {
    showError(`The server did not answer (${error.message}).`);
  } finally {
    button.disabled = false;
    document.body.classList.remove("busy");
  }
}

function tokenButton(text, side, index) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `token ${side}`;
  if (/^\[[A-Z]+\]$/.test(text)) button.classList.add("special");
  button.textContent = text;
  button.dataset.side = side;
  button.dataset.index = String(index);
  return button;
}

function showResult(result) {
  state.result = result;
  state.pinned = null;
  $("result").hidden = false;
  $("translation").textContent = result.text || "(no words to translate)";
  $("score").textContent = `score ${formatScore(result.score)}`;

  const hypotheses = $("hypotheses");
  hypotheses.replaceChildren();
  for (const hypothesis of result.hypotheses || []) {
    const item = document.createElement("li");
    item.textContent = `${hypothesis.text} `;
    const score = document.createElement("span");
    score.className = "muted";
    score.textContent = `(${formatScore(hypothesis.score)})`;
    item.append(score);
    hypotheses.append(item);
  }
  hypotheses.hidden = !(result.hypotheses && result.hypotheses.length);

  $("source-tokens").replaceChildren(
    ...result.source_tokens.map((t, j) => tokenButton(t, "source", j)));
  $("target-tokens").replaceChildren(
    ...result.target_tokens.map((t, i) => tokenButton(t, "target", i)));
  drawHeatmap(result);
}

function drawHeatmap(result) {
  const table = $("heatmap");
  table.replaceChildren();
  if (!result.target_tokens.length) return;
  const head = table.createTHead().insertRow();
  head.append(document.createElement("th"));
  result.source_tokens.forEach((token, j) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.append(tokenButton(token, "source", j));
    head.append(th);
  });
  const body = table.createTBody();
  result.attention.forEach((weights, i) => {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.append(tokenButton(result.target_tokens[i], "target", i));
    row.append(th);
    weights.forEach((weight, j) => {
      const cell = row.insertCell();
      cell.className = "cell";
      cell.dataset.row = String(i);
      cell.dataset.column = String(j);
      cell.title = `${result.target_tokens[i]} → ` +
        `${result.source_tokens[j]}: ${weight.toFixed(3)}`;
      paint(cell, weight);
    });
  });
}

function paint(element, weight) {
  const [r, g, b] = HIGHLIGHT;
  element.style.backgroundColor = `rgba(${r}, ${g}, ${b}, ${weight})`;
  element.classList.toggle("strong", weight > 0.5);
}

function clearToken(element) {
  element.style.backgroundColor = "";
  element.classList.remove("strong", "active");
  delete element.dataset.weight;
}

// Light up the other side's tokens by the attention weights of token
// `index` of `side` ("source" or "target"); null clears everything.
function highlight(side, index) {
  const result = state.result;
  for (const token of document.querySelectorAll("#result .token")) {
    clearToken(token);
  }
  for (const cell of document.querySelectorAll("#heatmap .cell")) {
    cell.classList.remove("in-row", "in-column");
  }
  if (!result || side === null) return;
  const other = side === "target" ? "source" : "target";
  for (const token of document.querySelectorAll(`#result .token.${other}`)) {
    const k = Number(token.dataset.index);
    const weight = side === "target"
      ? result.attention[index][k]
      : result.attention[k][index];
    token.dataset.weight = String(weight);
    paint(token, weight);
  }
  const selector = `#result .token.${side}[data-index="${index}"]`;
  for (const token of document.querySelectorAll(selector)) {
    token.classList.add("active");
  }
  const key = side === "target" ? "row" : "column";
  const cells = `#heatmap .cell[data-${key}="${index}"]`;
  for (const cell of document.querySelectorAll(cells)) {
    cell.classList.add(`in-${key}`);
  }
}

function tokenOf(event) {
  const token = event.target.closest && event.target.closest(".token");
  return token && $("result").contains(token) ? token : null;
}

function cellOf(event) {
  return event.target.closest && event.target.closest("#heatmap .cell");
}

function showPinned() {
  const pinned = state.pinned;
  highlight(pinned ? pinned.side : null, pinned ? pinned.index : 0);
}

function setUpInteraction() {
  const result = $("result");
  // Mouse and pen: hover. Touch has no hover: a tap (click) pins a token.
  result.addEventListener("pointerover", (event) => {
    if (event.pointerType === "touch") return;
    const token = tokenOf(event);
    const cell = cellOf(event);
    if (token) highlight(token.dataset.side, Number(token.dataset.index));
    else if (cell) highlight("target", Number(cell.dataset.row));
  });
  result.addEventListener("pointerout", (event) => {
    if (event.pointerType === "touch") return;
    const next = event.relatedTarget;
    const onAnother = next && next.closest && next.closest(".token, .cell");
    if (!onAnother) showPinned();
  });
  result.addEventListener("click", (event) => {
    const token = tokenOf(event);
    const cell = cellOf(event);
    if (!token && !cell) return;
    const side = token ? token.dataset.side : "target";
    const index = Number(token ? token.dataset.index : cell.dataset.row);
    const pinned = state.pinned;
    state.pinned = pinned && pinned.side === side && pinned.index === index
      ? null
      : { side, index };
    showPinned();
  });
  // Keyboard: a focused token shows its attention.
  result.addEventListener("focusin", (event) => {
    const token = tokenOf(event);
    if (token) highlight(token.dataset.side, Number(token.dataset.index));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", translate);
  $("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("form").requestSubmit();
    }
  });
  for (const radio of document.querySelectorAll('input[name="method"]')) {
    radio.addEventListener("change", showBeamOptions);
  }
  setUpInteraction();
  loadHealth();
});
