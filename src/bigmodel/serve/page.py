"""The web page served at ``/``: plain HTML and a small script, no build step. It lists the models
(``GET /v2/models``), and for the chosen one takes a drawing or an image / WAV upload, or a text,
posts it to ``/v2/models/{name}/classify`` and shows the top classes with probabilities; for
images also the explanation overlay from ``/v2/models/{name}/explain``."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bigmodel serve</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
  fieldset { border: 1px solid #ccc; margin: 1rem 0; }
  canvas { border: 1px solid #888; background: #000; touch-action: none; cursor: crosshair; }
  textarea { width: 100%; }
  table { border-collapse: collapse; margin-top: 1rem; }
  td { padding: 0.2rem 0.6rem; }
  .bar { background: #4a7; height: 0.8rem; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>bigmodel serve</h1>
<label>Model <select id="model"></select></label> <span id="kind"></span>
<form id="image-form" hidden>
  <fieldset><legend>Draw (white on black) or upload a PNG / .npy image</legend>
    <canvas id="canvas" width="224" height="224"></canvas><br>
    <button type="button" id="clear">Clear</button>
    <input type="file" id="image-file" accept=".png,.npy,image/png">
  </fieldset>
  <button type="submit" id="image-submit">Classify</button>
</form>
<form id="text-form" hidden>
  <fieldset><legend>Text</legend><textarea id="text" rows="4"></textarea></fieldset>
  <button type="submit" id="text-submit">Classify</button>
</form>
<form id="audio-form" hidden>
  <fieldset><legend>Upload a WAV clip</legend><input type="file" id="audio-file" accept=".wav">
  </fieldset>
  <button type="submit" id="audio-submit">Classify</button>
</form>
<div id="status"></div>
<table id="result"></table>
<figure id="explanation" hidden><img id="overlay" alt="explanation overlay" width="224">
  <figcaption id="overlay-caption"></figcaption></figure>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let models = [];
const canvas = $("canvas"), ctx = canvas.getContext("2d");
let drawing = false, drawn = false;
function clearCanvas() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false; }
clearCanvas();
canvas.addEventListener("pointerdown", (e) => { drawing = true; stroke(e); });
canvas.addEventListener("pointermove", (e) => { if (drawing) stroke(e); });
window.addEventListener("pointerup", () => { drawing = false; });
function stroke(e) { const r = canvas.getBoundingClientRect(); ctx.fillStyle = "#fff";
  ctx.beginPath(); ctx.arc(e.clientX - r.left, e.clientY - r.top, 12, 0, 2 * Math.PI); ctx.fill();
  drawn = true; }
$("clear").onclick = clearCanvas;

async function loadModels() {
  const response = await fetch("/v2/models");
  models = (await response.json()).models;
  $("model").innerHTML = "";
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.name; option.textContent = m.name + (m.state === "ready" ? "" : " (" + m.state + ")");
    $("model").appendChild(option);
  }
  showForm();
}
function current() { return models.find((m) => m.name === $("model").value); }
function showForm() {
  const m = current(); const kind = m ? m.kind : null;
  $("kind").textContent = kind ? "(" + kind + ")" : "";
  $("image-form").hidden = kind !== "image";
  $("text-form").hidden = kind !== "text";
  $("audio-form").hidden = kind !== "audio";
}
$("model").onchange = showForm;

async function classify(body) {
  $("status").textContent = "classifying..."; $("status").className = "";
  $("result").innerHTML = ""; $("explanation").hidden = true;
  const url = "/v2/models/" + encodeURIComponent($("model").value) + "/classify?top_k=5";
  const response = await fetch(url, { method: "POST", body: body });
  const answer = await response.json();
  if (!response.ok) { $("status").textContent = answer.error; $("status").className = "error";
    return; }
  const rows = answer.predictions[0];
  $("status").textContent = "predicted: ";
  const top = document.createElement("b"); top.id = "top-class"; top.textContent = rows[0].class;
  $("status").appendChild(top);
  for (const row of rows) {
    const tr = document.createElement("tr"); tr.className = "prediction";
    const name = document.createElement("td"); name.textContent = row.class;
    const p = document.createElement("td"); p.textContent = row.probability.toFixed(4);
    const barCell = document.createElement("td"); const bar = document.createElement("div");
    bar.className = "bar"; bar.style.width = (row.probability * 200).toFixed(0) + "px";
    barCell.appendChild(bar); tr.append(name, p, barCell); $("result").appendChild(tr);
  }
}
$("image-form").onsubmit = async (e) => {
  e.preventDefault();
  const form = new FormData(); const file = $("image-file").files[0];
  if (file && !drawn) { form.append("file", file); }
  else { const blob = await new Promise((ok) => canvas.toBlob(ok, "image/png"));
    form.append("file", blob, "drawing.png"); }
  await classify(form);
  const response = await fetch("/v2/models/" + encodeURIComponent($("model").value) + "/explain",
                               { method: "POST", body: form });
  if (response.ok) {
    const explained = await response.json();
    $("overlay").src = "data:image/png;base64," + explained.png;
    $("overlay-caption").textContent = explained.method + " for class " + explained.target_class;
    $("explanation").hidden = false;
  }
};
$("text-form").onsubmit = async (e) => {
  e.preventDefault(); const form = new FormData(); form.append("text", $("text").value);
  await classify(form);
};
$("audio-form").onsubmit = async (e) => {
  e.preventDefault(); const file = $("audio-file").files[0];
  if (!file) { $("status").textContent = "choose a WAV file"; return; }
  const form = new FormData(); form.append("file", file); await classify(form);
};
loadModels();
</script>
</body>
</html>
"""

__all__ = ["PAGE"]
