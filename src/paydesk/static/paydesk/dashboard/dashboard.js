// paydesk dashboard behaviour: theme toggle, copy buttons, confirmations, live refresh.
// Plain JavaScript, no build step; htmx (vendored next to this file) does the requests.
(function () {
  "use strict";
  var KEY = "paydesk-theme";

  function currentTheme() {
    var chosen = document.documentElement.getAttribute("data-theme");
    if (chosen) return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches
      ? "dark" : "light";
  }

  function applyTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    try { window.localStorage.setItem(KEY, theme); } catch (e) { /* not remembered */ }
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // http:// pages other than localhost have no Clipboard API: select and copy instead.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-theme-toggle]");
    if (toggle) {
      applyTheme(currentTheme() === "dark" ? "light" : "dark");
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var status = copy.parentElement.querySelector("[data-copy-status]");
      copyText(copy.getAttribute("data-copy")).then(function () {
        copy.setAttribute("data-copied", "true");
        if (status) status.textContent = copy.getAttribute("data-copied-label") || "Copied";
      }, function () {
        if (status) status.textContent = copy.getAttribute("data-failed-label") || "Copy failed";
      });
    }
  });

  // <form data-confirm="Refund 10.00 EUR?">: ask before an action that moves money.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // Live regions poll with hx-trigger="every Ns [!document.hidden], paydesk:refresh":
  // hidden tabs skip their polls, and coming back refreshes at once instead of waiting.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-live]").forEach(function (element) {
      window.htmx.trigger(element, "paydesk:refresh");
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyThemeState();
  });

  function applyThemeState() {
    var theme = currentTheme();
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
    });
  }
})();
