// unisched dashboard: refresh the page's main part in place every few
// seconds (the server renders it), and say who holds the hovered pCPU.
(function () {
  "use strict";
  var refresh = Number(document.body.dataset.refresh) || 5;

  function describe(el) {
    var hover = document.getElementById("hover");
    if (hover && el && el.classList.contains("cpu") && el.title) {
      var host = el.closest(".host");
      hover.textContent = (host ? host.dataset.host + ": " : "") + el.title;
    }
  }
  document.addEventListener("mouseover", function (e) { describe(e.target); });
  document.addEventListener("focusin", function (e) { describe(e.target); });

  function reload() {
    fetch(location.href, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status + " " + r.statusText); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var main = doc.getElementById("main"), status = doc.getElementById("status");
        if (main) { document.getElementById("main").replaceWith(main); }
        if (status) { document.getElementById("status").replaceWith(status); }
      })
      .catch(function (err) {
        var s = document.getElementById("status");
        if (s) { s.classList.add("stale"); s.title = "refresh failed: " + err.message; }
      })
      .finally(function () { setTimeout(reload, refresh * 1000); });
  }
  setTimeout(reload, refresh * 1000);
})();
