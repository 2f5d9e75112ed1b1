"""The script of the page at ``/`` (plain JavaScript, no build step; embedded by
:mod:`bigmodel.serve.page`). Recording: ``getUserMedia`` + ``MediaRecorder`` for the clip length
of the run, the recording decoded and resampled to the run's rate by an ``OfflineAudioContext``
(mono), cut to the run's clip length and encoded as 16-bit PCM WAV here, then posted like an
uploaded file."""

SCRIPT = r"""
"use strict";
const $ = (id) => document.getElementById(id);
const FORMS = { image: "image-form", text: "text-form", audio: "audio-form",
                language_model: "generate-form", seq2seq: "translate-form" };
let models = [];
let recorded = null;  // the last recording, a WAV Blob

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
    option.value = m.name;
    option.textContent = m.name + (m.state === "ready" ? "" : " (" + m.state + ")");
    $("model").appendChild(option);
  }
  showForm();
}
function current() { return models.find((m) => m.name === $("model").value); }
function modelUrl(path) { return "/v2/models/" + encodeURIComponent($("model").value) + path; }
function showForm() {
  const m = current(); const kind = m ? m.kind : null;
  $("kind").textContent = kind ? "(" + kind.replace("_", " ") + ")" : "";
  for (const [k, id] of Object.entries(FORMS)) $(id).hidden = kind !== k;
  clearOutput(""); recorded = null; $("recording").hidden = true; $("record-note").textContent = "";
}
$("model").onchange = showForm;

function clearOutput(message) {
  $("status").textContent = message; $("status").className = "";
  $("result").innerHTML = ""; $("explanation").hidden = true;
  $("text-explanation").hidden = true; $("generated").innerHTML = "";
}
function fail(message) { $("status").textContent = message; $("status").className = "error"; }
async function post(path, body, json) {
  const options = { method: "POST", body: json ? JSON.stringify(body) : body };
  if (json) options.headers = { "Content-Type": "application/json" };
  const response = await fetch(modelUrl(path), options);
  const answer = await response.json();
  if (!response.ok) { fail(answer.error); return null; }
  return answer;
}

// -- classification ---------------------------------------------------------------------------
async function classify(body) {
  clearOutput("classifying...");
  const answer = await post("/classify?top_k=5", body);
  if (!answer) return null;
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
  return answer;
}
async function explain(body) {
  const response = await fetch(modelUrl("/explain"), { method: "POST", body: body });
  return response.ok ? await response.json() : null;
}
$("image-form").onsubmit = async (e) => {
  e.preventDefault();
  const form = new FormData(); const file = $("image-file").files[0];
  if (file && !drawn) { form.append("file", file); }
  else { const blob = await new Promise((ok) => canvas.toBlob(ok, "image/png"));
    form.append("file", blob, "drawing.png"); }
  if (!await classify(form)) return;
  const explained = await explain(form);
  if (explained) {
    $("overlay").src = "data:image/png;base64," + explained.png;
    $("overlay-caption").textContent = explained.method + " for class " + explained.target_class;
    $("explanation").hidden = false;
  }
};
$("text-form").onsubmit = async (e) => {
  e.preventDefault(); const form = new FormData(); form.append("text", $("text").value);
  if (!await classify(form)) return;
  const explained = await explain(form);
  if (explained) showTokens(explained);
};
function showTokens(explained) {
  // one span per token, its background red (for the class) or blue (against), by |value| / max
  const values = explained.attributions, tokens = explained.tokens;
  const peak = Math.max(1e-12, ...values.map(Math.abs));
  $("tokens").innerHTML = "";
  tokens.forEach((token, i) => {
    const span = document.createElement("span"); span.className = "token";
    const value = values[i], alpha = (Math.abs(value) / peak).toFixed(3);
    span.style.background = value >= 0 ? "rgba(220, 40, 40, " + alpha + ")"
                                        : "rgba(40, 90, 220, " + alpha + ")";
    if (alpha > 0.6) span.style.color = "#fff";  // dark backgrounds: light text
    span.title = value.toPrecision(3); span.textContent = token;
    $("tokens").appendChild(span);
  });
  $("token-method").textContent = explained.method.replace("_", " ");
  $("explanation-class").textContent = explained.target_class;
  $("text-explanation").hidden = false;
}
$("audio-form").onsubmit = async (e) => {
  e.preventDefault(); const file = $("audio-file").files[0];
  if (!file && !recorded) { fail("choose a WAV file or record a clip"); return; }
  const form = new FormData();
  if (recorded) form.append("file", recorded, "recording.wav"); else form.append("file", file);
  await classify(form);
};
$("audio-file").onchange = () => { recorded = null; $("recording").hidden = true; };

// -- recording ----------------------------------------------------------------------------------
$("record").onclick = async () => {
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    // browsers offer the microphone to secure pages only (https, or http on localhost)
    fail("recording needs a secure page (https, or http://localhost) and a browser with " +
         "MediaRecorder; upload a WAV file instead"); return;
  }
  $("record").disabled = true;
  try { await record(); }
  catch (error) { fail("recording failed: " + error.message); }
  finally { $("record").disabled = false; }
};
async function record() {
  const meta = await (await fetch(modelUrl(""))).json();
  const rate = meta.parameters.sample_rate, length = meta.inputs[0].shape[1];
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream), chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise((ok) => { recorder.onstop = ok; });
  $("record-note").textContent = "recording " + (length / rate).toFixed(2) + " s...";
  recorder.start();
  setTimeout(() => recorder.stop(), 1000 * length / rate);
  await stopped;
  stream.getTracks().forEach((track) => track.stop());
  const encoded = await new Blob(chunks).arrayBuffer();
  const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(encoded);
  // resample to the run's rate (and mix down to mono) by rendering through an offline context
  const frames = Math.max(1, Math.min(length, Math.round(decoded.duration * rate)));
  const offline = new OfflineAudioContext(1, frames, rate);
  const source = offline.createBufferSource();
  source.buffer = decoded; source.connect(offline.destination); source.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  recorded = wavBlob(samples, rate);
  $("recording").src = URL.createObjectURL(recorded); $("recording").hidden = false;
  $("record-note").textContent = "recorded " + samples.length + " samples at " + rate + " Hz";
  $("audio-file").value = "";
}
function wavBlob(samples, rate) {
  // a 44-byte RIFF/WAVE header, then mono 16-bit little-endian PCM
  const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++)
    view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((x, i) => view.setInt16(44 + 2 * i,
    Math.round(Math.max(-1, Math.min(1, x)) * 32767), true));
  return new Blob([view], { type: "audio/wav" });
}

// -- generation and translation ---------------------------------------------------------------
function number(id) { const v = $(id).value.trim(); return v === "" ? null : Number(v); }
function showTexts(texts, sources) {
  texts.forEach((text, i) => {
    if (sources) {  // a translation: its source above it
      const label = document.createElement("div"); label.className = "source";
      label.textContent = sources[i] + " \u2192"; $("generated").appendChild(label);
    }
    const pre = document.createElement("pre"); pre.className = "sample"; pre.textContent = text;
    $("generated").appendChild(pre);
  });
}
$("generate-form").onsubmit = async (e) => {
  e.preventDefault(); clearOutput("generating...");
  const body = { prompt: $("prompt").value };
  for (const [key, id] of [["max_tokens", "max-tokens"], ["temperature", "temperature"],
                           ["top_k", "top-k"], ["seed", "seed"], ["num_samples", "num-samples"]])
    if (number(id) !== null) body[key] = number(id);  // left empty: the server's default
  const answer = await post("/generate", body, true);
  if (!answer) return;
  $("status").textContent = answer.samples.length + " sample(s):"; showTexts(answer.samples);
};
$("translate-form").onsubmit = async (e) => {
  e.preventDefault(); clearOutput("translating...");
  const texts = $("source").value.split("\n").map((t) => t.trim()).filter((t) => t);
  if (!texts.length) { fail("type at least one text"); return; }
  const body = { texts: texts };
  if (number("beam") !== null) body.beam = number("beam");
  const answer = await post("/translate", body, true);
  if (!answer) return;
  $("status").textContent = "outputs:"; showTexts(answer.translations, texts);
};
loadModels();
"""

__all__ = ["SCRIPT"]
