/* The voice-over writer's small helpers: the live length estimate, the language that follows
 * the voice, and the Listen button. Delegated from the document, so writers swapped in by htmx
 * need no setup; without this file the writer still works (Listen is then hidden). */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // The same estimate as tts.estimate_seconds: CJK characters at the zh rate, others at en.
  var CJK = /[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]/g;
  var number = new Intl.NumberFormat("en-US");

  function writerOf(el) { return el && el.closest ? el.closest("[data-voiceover]") : null; }

  function speedOf(writer) {
    var input = writer.querySelector("[name=speed]");
    var speed = parseFloat(input && input.value);
    return isFinite(speed) ? Math.min(Math.max(speed, 0.8), 2.0) : 1.0;
  }

  function estimate(writer) {
    var area = writer.querySelector("textarea[data-script-count]");
    var out = area && document.getElementById(area.dataset.scriptCount);
    if (!out) return;
    var script = area.value.replace(/\r\n?/g, "\n").trim();
    var cjk = (script.match(CJK) || []).length;
    var seconds = (cjk / parseFloat(out.dataset.cpsZh) + (script.length - cjk) / parseFloat(out.dataset.cpsEn)) / speedOf(writer);
    var limit = parseFloat(out.dataset.limit);
    var text = number.format(script.length) + " characters · about " + Math.round(seconds) + " s of " + limit + " s";
    if (seconds > limit) text += ": cut about " + number.format(Math.ceil(script.length * (1 - limit / seconds)));
    out.textContent = text;
    out.classList.toggle("near", seconds > limit * 0.9 && seconds <= limit);
    out.classList.toggle("full", seconds > limit);
  }

  function showLanguage(writer) {
    var select = writer.querySelector("[data-voice-select]");
    var shown = writer.querySelector("[data-voice-language]");
    var option = select && select.selectedOptions[0];
    if (option && shown) shown.lastChild.textContent = option.dataset.language;
  }

  // Which engine reads the script decides which sample to play: the offline stand-in for a
  // draft (or on a server without Kling), else Kling's voice.
  function offline(writer) {
    if (writer.dataset.offline === "always") return true;
    if (writer.dataset.offline !== "draft") return false;
    var form = writer.closest("form");
    var mode = form && form.querySelector("[name=mode]:checked, input[type=hidden][name=mode]");
    return !mode || mode.value === "draft";
  }

  function listen(writer) {
    var select = writer.querySelector("[data-voice-select]");
    var player = writer.querySelector("[data-sample-player]");
    var status = writer.querySelector("[data-listen-status]");
    var option = select && select.selectedOptions[0];
    if (!option || !player) return;
    var url = option.dataset.sample + (offline(writer) ? "?offline=1" : "");
    if (status) status.textContent = "Loading a sample of " + option.textContent + "…";
    player.onplaying = function () { if (status) status.textContent = "Playing " + option.textContent + "."; };
    player.onended = function () { if (status) status.textContent = ""; };
    player.onerror = function () {
      if (status) status.textContent = "The sample could not be played: try again in a moment.";
    };
    if (player.getAttribute("src") !== url) player.src = url;
    else player.currentTime = 0;
    var playing = player.play();
    if (playing && playing.catch) playing.catch(function () { /* onerror says it */ });
  }

  document.addEventListener("input", function (event) {
    var writer = writerOf(event.target);
    if (writer) estimate(writer);
  });
  document.addEventListener("change", function (event) {
    var writer = writerOf(event.target);
    if (!writer) return;
    estimate(writer);
    if (event.target.matches("[data-voice-select]")) {
      showLanguage(writer);
      var status = writer.querySelector("[data-listen-status]");
      if (status) status.textContent = "";
    }
  });
  // Enter in the speed field makes the voice-over, rather than submitting the new job around it.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !event.target.matches || !event.target.matches("[data-voiceover] input")) return;
    var box = event.target.closest(".vo-writer");
    var make = box && box.querySelector(".vo-actions button[type=submit]");
    if (!make) return;
    event.preventDefault();
    make.click();
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-listen]");
    var writer = writerOf(button);
    if (writer) listen(writer);
  });
})();
