/* The studio's own bit of JavaScript: drag and drop, upload progress, the prompt's character
 * count and ticking "running for" clocks. Everything else is htmx, and every page works
 * without this file. Listeners are delegated from the document, so fragments swapped in by
 * htmx need no setup. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // --- no polling from a hidden tab -------------------------------------------------------
  // Pollers marked data-pause-hidden skip their requests while the tab is hidden (the CSP
  // forbids htmx's eval'd trigger filters, so this is where that condition lives); the
  // dashboard's poller also asks once when the tab shows again.
  document.addEventListener("htmx:confirm", function (event) {
    if (document.hidden && event.target.hasAttribute("data-pause-hidden")) event.preventDefault();
  });

  // --- drag and drop onto a file field -----------------------------------------------------
  function zoneOf(event) {
    return event.target instanceof Element ? event.target.closest("[data-dropzone]") : null;
  }
  function hasFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
  }
  document.addEventListener("dragover", function (event) {
    if (!hasFiles(event)) return;
    event.preventDefault(); // also stops the browser from opening a file dropped beside a zone
    var zone = zoneOf(event);
    event.dataTransfer.dropEffect = zone ? "copy" : "none";
    document.querySelectorAll("[data-dropzone].is-over").forEach(function (z) {
      if (z !== zone) z.classList.remove("is-over");
    });
    if (zone) zone.classList.add("is-over");
  });
  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event);
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    var zone = zoneOf(event);
    if (!zone) return;
    zone.classList.remove("is-over");
    var input = zone.querySelector("input[type=file]");
    var file = event.dataTransfer.files[0];
    if (!input || !file) return;
    var one = new DataTransfer(); // the field takes one file; keep the first if several dropped
    one.items.add(file);
    input.files = one.files;
    input.dispatchEvent(new Event("change", { bubbles: true })); // htmx checks it, as on pick
  });

  // --- upload progress while a file is being checked ---------------------------------------
  document.addEventListener("htmx:xhr:progress", function (event) {
    var field = event.target.closest && event.target.closest(".file-field");
    var bar = field && field.querySelector("progress.upload");
    if (bar && event.detail.lengthComputable) {
      bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
    }
  });

  // --- a file refused for its size before it was read (413, jobs/bodycaps.py) -------------
  // htmx swaps no 4xx answer; the refusal page's sentence goes where the field's problems go.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var field = event.target.closest && event.target.closest(".file-field");
    if (!field || (xhr.status !== 413 && xhr.status !== 411)) return;
    var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
    var said = page.querySelector("[data-refusal]");
    var errors = field.querySelector(".errors");
    if (!errors) {
      errors = document.createElement("div");
      errors.className = "errors";
      errors.setAttribute("role", "alert");
      field.querySelector(".pick-row").after(errors);
    }
    var line = document.createElement("p");
    line.className = "error";
    line.textContent = said ? said.textContent : "The file is too large to send.";
    errors.replaceChildren(line);
    field.classList.add("has-error");
  });

  // --- the prompt's live character count ---------------------------------------------------
  var number = new Intl.NumberFormat("en-US");
  function count(area) {
    var out = document.getElementById(area.dataset.count);
    if (!out) return;
    var max = parseInt(area.getAttribute("maxlength"), 10) || 0;
    var used = area.value.replace(/\r\n/g, "\n").length;
    out.textContent = number.format(used) + " / " + number.format(max);
    out.classList.toggle("near", max && used >= max * 0.9 && used < max);
    out.classList.toggle("full", max && used >= max);
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-count]")) count(event.target);
  });
  document.querySelectorAll("textarea[data-count]").forEach(count);

  // --- times that tick: "running for 1 min 05 s", "about 40 s left" --------------------
  // Cards are cached on the server, so they carry moments, not durations; they are counted
  // here against the server's clock (the page says what time it was there when it was made,
  // so a browser clock that is off does not matter). The wording follows the server's.
  var skew = Date.parse(document.body.dataset.now) - Date.now() || 0;
  function human(total) {
    total = Math.max(Math.round(total), 0);
    if (total < 60) return total + " s";
    var minutes = Math.floor(total / 60), secs = total % 60;
    if (minutes < 60) return secs ? minutes + " min " + String(secs).padStart(2, "0") + " s" : minutes + " min";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }
  function since(iso) { return (Date.now() + skew - Date.parse(iso)) / 1000; }
  function tick() {
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = "running for " + human(since(el.dataset.since));
    });
    document.querySelectorAll("[data-estimate]").forEach(function (el) {
      var estimate = parseFloat(el.dataset.estimate), spent = since(el.dataset.started);
      var left = estimate - spent;
      el.textContent = el.dataset.what + (left > 0 ? ": about " + human(left) + " left"
        : ": taking longer than usual (usually " + human(estimate) + ")");
      var box = el.closest(".card, .job-status");
      var bar = box && box.querySelector("progress");
      // Capped below the end: an estimate is not a promise, and a full bar looks stuck.
      if (bar) bar.value = Math.round(Math.min(Math.max(spent / estimate, 0.02), 0.97) * 100);
    });
  }
  tick();
  document.addEventListener("htmx:afterSettle", tick);
  setInterval(tick, 1000);

  // --- "2 hours ago" for finished cards ---------------------------------------------------
  // Finished cards are cached on the server, so they carry an absolute date; the reader's own
  // clock turns it into a relative one here (a clock a little ahead never says "in 1 minute").
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  function relative() {
    if (!rtf) return;
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var seconds = (Date.now() - Date.parse(el.getAttribute("datetime"))) / 1000;
      if (isNaN(seconds)) return;
      if (!el.title) el.title = el.textContent;
      var text = "just now";
      for (var i = 0; i < UNITS.length; i++) {
        if (seconds >= UNITS[i][1]) { text = rtf.format(-Math.floor(seconds / UNITS[i][1]), UNITS[i][0]); break; }
      }
      el.textContent = text;
    });
  }
  relative();
  document.addEventListener("htmx:afterSettle", relative);
  setInterval(relative, 30000);

  // --- copy a link shown once, and switch teams on pick ----------------------------------
  // Without JavaScript the Copy buttons stay hidden (CSS) and the link's field is selectable;
  // the team switcher keeps its Switch button.
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    var field = button && document.getElementById(button.dataset.copy);
    if (!field) return;
    function done(text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { done("Copied"); },
        function () { done("Press Ctrl+C"); });
    } else {
      done(document.execCommand && document.execCommand("copy") ? "Copied" : "Press Ctrl+C");
    }
  });
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.form) select.form.requestSubmit();
  });
})();
