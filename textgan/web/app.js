// The textgan demo page: plain JavaScript against the server's own API (no build step, nothing fetched
// from elsewhere). GET /v1/models fills the pickers and examples; the button POSTs /v1/transfer.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function current() {
  return models.find((m) => m.task === $("task").value);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showTask() {
  const m = current();
  if (!m) return;
  const direction = $("direction");
  direction.replaceChildren();
  if (m.auto_detect) direction.append(el("option", { value: "", textContent: "auto-detect: the other one" }));
  for (const d of m.domains) direction.append(el("option", { value: d, textContent: d }));
  if (!m.auto_detect) direction.value = m.domains[m.domains.length - 1];

  $("length-box").hidden = !m.length_control;
  if (m.length_control) {
    const words = Object.values(m.default_words)[0] || 8;
    $("length").value = words;
    $("length-value").textContent = words;
  }

  const examples = $("examples");
  examples.replaceChildren();
  for (const [domain, texts] of Object.entries(m.examples || {})) {
    examples.append(el("div", { className: "domain", textContent: `examples: ${domain}` }));
    for (const text of texts) {
      const b = el("button", { type: "button", className: "example", textContent: text, title: `a ${domain} test sentence` });
      b.addEventListener("click", () => { $("text").value = text; rewrite(); });
      examples.append(b);
    }
  }
  $("result").hidden = true;
}

function scoreLine(label, p) {
  if (p === null || p === undefined) return el("div", { className: "score", textContent: `${label}: n/a` });
  const bar = el("div", { className: "bar" }, el("span", { style: `width: ${(100 * p).toFixed(0)}%` }));
  return el("div", { className: "score", textContent: `${label}: ${p.toFixed(2)}` }, bar);
}

function render(result) {
  const detected = result.source ? `judged ${result.source}, ` : "";
  $("detected").textContent = `${detected}written as ${result.to} · style = the judge's p(${result.to})`;
  const cards = result.outputs.map((text, i) => el("div", { className: "card output" },
    el("p", { className: "text", textContent: text }),
    scoreLine("style before", result.style_before),
    scoreLine("style after", result.style_after[i])));
  $("outputs").replaceChildren(...cards);
  $("result").hidden = false;
}

function clearResult() {   // an error must not leave the previous text's result on screen
  $("outputs").replaceChildren();
  $("detected").textContent = "";
  $("result").hidden = true;
}

function showTemperature() {
  $("temperature-box").hidden = (parseInt($("n").value, 10) || 1) < 2;
}

async function rewrite() {
  const m = current();
  const text = $("text").value.trim();
  if (!m || !text) { setStatus("type a sentence first"); return; }
  const body = { task: m.task, texts: [text] };
  if ($("direction").value) body.to = $("direction").value;
  const n = parseInt($("n").value, 10) || 1;
  if (n > 1) { body.n = n; body.sample = true; body.temperature = parseFloat($("temperature").value) || 0.7; }
  if (m.length_control) body.max_words = parseInt($("length").value, 10);
  $("go").disabled = true;
  setStatus("rewriting…");
  const started = performance.now();
  try {
    const response = await fetch("/v1/transfer", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) { clearResult(); setStatus(data.error || `error ${response.status}`, true); return; }
    render(data.results[0]);
    setStatus(`${((performance.now() - started) / 1000).toFixed(2)} s · ${data.run}`);
  } catch (err) {
    clearResult();
    setStatus(`the server did not answer: ${err}`, true);
  } finally {
    $("go").disabled = false;
  }
}

async function start() {
  try {
    const response = await fetch("/v1/models");
    models = (await response.json()).models;
  } catch (err) {
    setStatus(`cannot load the models: ${err}`, true);
    return;
  }
  for (const m of models) $("task").append(el("option", { value: m.task, textContent: m.task }));
  $("task").addEventListener("change", showTask);
  $("length").addEventListener("input", () => { $("length-value").textContent = $("length").value; });
  $("go").addEventListener("click", rewrite);
  $("n").addEventListener("input", showTemperature);
  showTemperature();
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) rewrite();
  });
  showTask();
  setStatus(models.length ? "ready" : "no models loaded", !models.length);
}

start();
