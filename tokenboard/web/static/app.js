// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          const label = copy.textContent;
          copy.textContent = "Copied";
          setTimeout(function () { copy.textContent = label; }, 1500);
        });
      }
    }
    const toggle = event.target.closest("[data-toggle-sidebar]");
    if (toggle) {
      const open = document.body.classList.toggle("sidebar-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
  });
  document.addEventListener("submit", function (event) {
    const message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  document.addEventListener("change", function (event) {
    const autosubmit = event.target.closest("form[data-autosubmit]");
    if (autosubmit && event.target.matches("select")) { autosubmit.requestSubmit(); return; }
    if (event.target.matches("[data-org-switch]")) {
      const id = event.target.value;
      window.location.href = id ? "/organizations/" + id + "/overview" : "/organizations";
    }
  });
})();
