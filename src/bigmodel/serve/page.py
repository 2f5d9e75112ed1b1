"""The web page served at ``/``: plain HTML and a small script (:mod:`bigmodel.serve.page_script`),
no build step. It lists the models (``GET /v2/models``) and shows the form of the chosen one's kind:

- image: draw or upload a PNG / ``.npy``; the top classes and the explanation overlay;
- text: type a text; the top classes and the text's tokens colored by their attributions
  (``/explain``: red for the predicted class, blue against it);
- audio: upload a WAV clip or record one with the microphone (encoded to WAV in the page at the
  run's sample rate, cut to its clip length); the top classes;
- language model: a prompt and the sampling options; the generated samples (``/generate``);
- seq2seq: texts, one per line, and a beam width; their outputs (``/translate``).
"""

from bigmodel.serve.page_script import SCRIPT

_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bigmodel serve</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
  fieldset { border: 1px solid #ccc; margin: 1rem 0; }
  canvas { border: 1px solid #888; background: #000; touch-action: none; cursor: crosshair; }
  textarea { width: 100%; box-sizing: border-box; }
  input[type=number] { width: 5rem; }
  table { border-collapse: collapse; margin-top: 1rem; }
  td { padding: 0.2rem 0.6rem; }
  .bar { background: #4a7; height: 0.8rem; }
  .error { color: #b00; }
  .options label { margin-right: 0.8rem; white-space: nowrap; }
  #tokens { line-height: 2; }
  .token { padding: 0.15rem 0.25rem; margin: 0 0.1rem; border-radius: 0.2rem; }
  .sample { background: #f4f4f4; padding: 0.6rem; white-space: pre-wrap; margin-top: 0.2rem; }
  .source { color: #555; margin-top: 0.8rem; }
  .legend { font-size: 0.85rem; color: #555; }
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
  <fieldset><legend>Upload a WAV clip or record one</legend>
    <input type="file" id="audio-file" accept=".wav,audio/wav"><br>
    <button type="button" id="record">Record</button>
    <span id="record-note"></span><br>
    <audio id="recording" controls hidden></audio>
  </fieldset>
  <button type="submit" id="audio-submit">Classify</button>
</form>
<form id="generate-form" hidden>
  <fieldset><legend>Prompt</legend><textarea id="prompt" rows="3"></textarea>
    <div class="options">
      <label>new characters <input type="number" id="max-tokens" value="80" min="1"></label>
      <label>temperature <input type="number" id="temperature" value="0.8" min="0"
        step="0.1"></label>
      <label>top k <input type="number" id="top-k" min="1" placeholder="all"></label>
      <label>seed <input type="number" id="seed" min="0" placeholder="none"></label>
      <label>samples <input type="number" id="num-samples" value="1" min="1"></label>
    </div>
  </fieldset>
  <button type="submit" id="generate-submit">Generate</button>
</form>
<form id="translate-form" hidden>
  <fieldset><legend>Texts, one per line</legend><textarea id="source" rows="4"></textarea>
    <div class="options"><label>beam width <input type="number" id="beam" value="1" min="1">
    </label></div>
  </fieldset>
  <button type="submit" id="translate-submit">Translate</button>
</form>
<div id="status"></div>
<table id="result"></table>
<figure id="explanation" hidden><img id="overlay" alt="explanation overlay" width="224">
  <figcaption id="overlay-caption"></figcaption></figure>
<section id="text-explanation" hidden>
  <p id="tokens"></p>
  <p class="legend"><span id="token-method"></span> for class <b id="explanation-class"></b>:
    red tokens speak for it, blue against it (hover for the value).</p>
</section>
<section id="generated"></section>
<script>
""" + SCRIPT + """
</script>
</body>
</html>
"""

PAGE = _HTML

__all__ = ["PAGE"]
