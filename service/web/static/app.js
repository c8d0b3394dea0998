/* pushpool dashboard: the theme (set before first paint), client-side form checks, log
   scrolling. No key or secret ever reaches this script (the session cookie is HttpOnly). */
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("pushpool-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  function toggleTheme() {
    var dark = root.getAttribute("data-theme") === "dark" ||
      (!root.hasAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
    var next = dark ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("pushpool-theme", next); } catch (e) { /* private mode */ }
  }

  function checkJson(area) {
    var text = area.value.trim();
    var message = "";
    if (text) {
      try { JSON.parse(text); } catch (e) { message = "Not valid JSON: " + e.message; }
    }
    area.setCustomValidity(message);
    area.classList.toggle("invalid", message !== "");
    return message === "";
  }

  function validate(event) {
    var form = event.target;
    if (!form.hasAttribute("data-validate")) return;
    form.querySelectorAll("textarea[data-json]").forEach(checkJson);
    if (!form.checkValidity()) {
      event.preventDefault();
      form.reportValidity();
    }
  }

  function confirmAction(event) {
    var text = event.target.getAttribute("data-confirm");
    if (text && !window.confirm(text)) event.preventDefault();
  }

  function followLogs(event) {
    var box = document.getElementById("log-lines");
    if (!box || !event.detail || !event.detail.elt) return;
    if (box.dataset.follow !== "no") box.scrollTop = box.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) button.addEventListener("click", toggleTheme);
    var box = document.getElementById("log-lines");
    if (box) {
      box.scrollTop = box.scrollHeight;
      box.addEventListener("scroll", function () {
        box.dataset.follow = box.scrollHeight - box.scrollTop - box.clientHeight < 40 ? "yes" : "no";
      });
    }
  });
  document.addEventListener("submit", validate, true);
  document.addEventListener("submit", confirmAction, true);
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-json]")) checkJson(event.target);
  });
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
  });
  document.addEventListener("htmx:oobAfterSwap", followLogs);
})();
