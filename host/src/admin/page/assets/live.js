// The status page's one script: it refreshes the element #live of a page every
// 2 seconds from the same URL with `part=live` (host/src/admin/page/mod.rs
// answers with that element's contents only). Without it the page still works;
// it is just not live.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) {
    return;
  }
  var every = Number(live.getAttribute("data-refresh-ms")) || 2000;
  function tick() {
    var url = new URL(window.location.href);
    url.searchParams.set("part", "live");
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected) {
          // The session ended (logged out, expired, or the host restarted).
          window.location.assign("/status/login");
          throw new Error("logged out");
        }
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        // What the reader opened stays open across the refresh.
        var open = [];
        live.querySelectorAll("details[open][data-key]").forEach(function (d) {
          open.push(d.getAttribute("data-key"));
        });
        live.innerHTML = html;
        open.forEach(function (key) {
          live.querySelectorAll("details[data-key]").forEach(function (d) {
            if (d.getAttribute("data-key") === key) {
              d.setAttribute("open", "");
            }
          });
        });
        live.removeAttribute("data-stale");
        live.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () {
        live.setAttribute("data-stale", "true");
      })
      .finally(function () {
        window.setTimeout(tick, every);
      });
  }
  window.setTimeout(tick, every);
})();
