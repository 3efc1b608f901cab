// Runs in <head>, before the first paint: apply the theme the user chose last time
// ("light" or "dark", kept in localStorage). Without a choice the stylesheet follows the
// system setting (prefers-color-scheme).
(function () {
  try {
    var theme = window.localStorage.getItem("paydesk-theme");
    if (theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    }
  } catch (e) { /* storage disabled: follow the system setting */ }
})();
