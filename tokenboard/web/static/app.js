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
    if (autosubmit && event.target.matches("select, input[type=checkbox]")) { autosubmit.requestSubmit(); return; }
    if (event.target.matches("[data-org-switch]")) {
      const id = event.target.value;
      window.location.href = id ? "/organizations/" + id + "/overview" : "/organizations";
    }
  });
})();

// Live updates: a page opts in with data-live-url (an event stream of its organization) on any element,
// and marks the parts to refresh with data-live-fragment and an id. On an event the page re-fetches its own
// URL (header X-Live-Refresh: 1) and swaps those elements by id; open <details> stay open. Listeners can
// also handle the "tokenboard:live" DOM event (detail: the event's JSON) themselves.
// Usage written while no stream is open is announced to nobody: between the page's rendering and the
// stream opening, while the browser reconnects after the server ended the stream (every few minutes), while
// the tab was hidden. So each time the stream (re)opens the page catches up once, the same way (the
// "tokenboard:live" detail is then {"catch_up": true}), debounced with the events that follow.
(function () {
  "use strict";
  const source = document.querySelector("[data-live-url]");
  if (!source || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  const url = source.getAttribute("data-live-url");
  let stream = null;
  let timer = null;
  let busy = false;
  let again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { headers: { "X-Live-Refresh": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        const fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-fragment][id]").forEach(function (old) {
          const next = fresh.getElementById(old.id);
          if (!next) { return; }
          const open = Array.from(old.querySelectorAll("details[open][id]")).map(function (d) { return d.id; });
          old.replaceWith(next);
          open.forEach(function (id) {
            const details = document.getElementById(id);
            if (details && details.tagName === "DETAILS") { details.open = true; }
          });
        });
        source.setAttribute("data-live-updated", new Date().toISOString());
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function announce(detail) {
    const notice = new CustomEvent("tokenboard:live", { detail: detail, cancelable: true });
    if (!document.dispatchEvent(notice)) { return; } // a page's own handler took care of it
    if (!document.querySelector("[data-live-fragment][id]")) { return; }
    clearTimeout(timer);
    timer = setTimeout(refresh, 300); // one refresh for a burst of events (and a catch-up among them)
  }

  function onUsage(event) {
    let detail = null;
    try { detail = JSON.parse(event.data); } catch (e) { detail = null; }
    announce(detail);
  }

  function open() {
    if (stream) { return; }
    stream = new EventSource(url);
    stream.addEventListener("usage", onUsage);
    // Fired on the first connection and on each reconnection (the EventSource's own, after the server
    // ended the stream or the network dropped it): catch up on what was written while it was closed.
    stream.addEventListener("open", function () { announce({ catch_up: true }); });
  }

  function close() {
    if (stream) { stream.close(); stream = null; }
  }

  // A hidden tab (or a phone's locked screen) keeps no connection open; on return the new stream's "open"
  // catches up (once: no refresh of its own here). Likewise for a page restored from the back/forward cache.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { close(); return; }
    open();
  });
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function (event) { if (event.persisted && !document.hidden) { open(); } });
  if (!document.hidden) { open(); }
})();

// Expandable rows: a <details data-lines-url> loads its per-user lines (JSON) when first opened. Without
// JavaScript its link asks the server for the page with that row expanded.
(function () {
  "use strict";
  if (!window.fetch) { return; }
  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
  function number(n) { return Number(n).toLocaleString("en-US"); }
  function render(target, lines) {
    target.textContent = "";
    if (!lines.length) {
      const p = document.createElement("p"); p.className = "muted"; p.textContent = "No usage."; target.appendChild(p); return;
    }
    const table = document.createElement("table");
    table.className = "lines-table";
    const head = table.createTHead().insertRow();
    ["User", "Cost", "Requests", "Tokens"].forEach(function (name) {
      const th = document.createElement("th"); th.textContent = name; head.appendChild(th);
    });
    const body = table.createTBody();
    lines.forEach(function (line) {
      const row = body.insertRow();
      row.setAttribute("data-line", line.email || "");
      row.appendChild(cell(line.email || "(no user)"));
      row.appendChild(cell(line.cost.display));
      row.appendChild(cell(number(line.requests)));
      const tokens = cell(number(line.tokens));
      tokens.title = "Input " + number(line.input_tokens) + " · Output " + number(line.output_tokens);
      row.appendChild(tokens);
    });
    target.appendChild(table);
  }
  document.addEventListener("toggle", function (event) {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.open || !details.hasAttribute("data-lines-url")) { return; }
    if (details.getAttribute("data-loaded") === "1") { return; }
    const target = details.querySelector("[data-lines]");
    if (!target) { return; }
    details.setAttribute("data-loaded", "1");
    target.textContent = "Loading…";
    fetch(details.getAttribute("data-lines-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
      .then(function (lines) { render(target, lines); })
      .catch(function () { details.removeAttribute("data-loaded"); target.textContent = "Could not load the users; try again."; });
  }, true);
})();
