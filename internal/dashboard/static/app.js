// Gatehouse dashboard: live charts on the overview (SVG, drawn here),
// copy buttons and confirmations. No dependencies; everything the page
// needs is served by the gateway itself.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmtMs(v) {
    if (!v) return "–";
    return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
  }
  function fmtRate(v) { return v < 10 ? v.toFixed(2) : v.toFixed(0); }
  function fmtPct(v) { return v ? (v * 100).toFixed(1) + "%" : "0%"; }
  function slug(s) { return s.toLowerCase().replace(/[^a-z0-9]/g, "-"); }

  // lineChart draws series (each {key, cls, label}) of points into an SVG.
  function lineChart(points, series, unit, label) {
    var W = 480, H = 140, L = 44, R = 8, T = 8, B = 20;
    var max = 0;
    points.forEach(function (p) { series.forEach(function (s) { if (p[s.key] > max) max = p[s.key]; }); });
    if (max <= 0) max = 1;
    var nice = Math.pow(10, Math.floor(Math.log10(max)));
    max = Math.ceil(max / nice) * nice;
    var svg = svgEl("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    for (var i = 0; i <= 2; i++) {
      var y = T + (H - T - B) * i / 2;
      svg.appendChild(svgEl("line", { "class": "grid", x1: L, x2: W - R, y1: y, y2: y }));
      var t = svgEl("text", { "class": "axis", x: L - 4, y: y + 3, "text-anchor": "end" });
      t.textContent = (max * (2 - i) / 2).toPrecision(2).replace(/\.0+$/, "") + unit;
      svg.appendChild(t);
    }
    var n = points.length;
    var first = svgEl("text", { "class": "axis", x: L, y: H - 4 });
    first.textContent = n ? ago(points[0].t) : "";
    svg.appendChild(first);
    var last = svgEl("text", { "class": "axis", x: W - R, y: H - 4, "text-anchor": "end" });
    last.textContent = "now";
    svg.appendChild(last);
    series.forEach(function (s) {
      // Latency and error rate have no value where there was no traffic:
      // the line breaks there instead of falling to zero.
      var d = "", pen = false;
      points.forEach(function (p, j) {
        if (s.gaps && !p.rps) { pen = false; return; }
        var x = L + (W - L - R) * (n > 1 ? j / (n - 1) : 0);
        var y = T + (H - T - B) * (1 - (p[s.key] || 0) / max);
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        // A point with no neighbour to join gets a dot, so that it shows.
        var alone = !pen && (j === n - 1 || (s.gaps && !points[j + 1].rps));
        if (alone) svg.appendChild(svgEl("circle", { "class": s.cls.replace("s-", "d-"), cx: x.toFixed(1), cy: y.toFixed(1), r: 3 }));
        pen = true;
      });
      svg.appendChild(svgEl("path", { "class": s.cls, d: d }));
    });
    return svg;
  }
  function ago(t) {
    var s = Math.round(Date.now() / 1000 - t);
    return s >= 120 ? Math.round(s / 60) + " min ago" : s + " s ago";
  }
  function legend(series) {
    var ul = el("ul", { "class": "legend" });
    series.forEach(function (s) {
      var li = el("li");
      li.appendChild(el("i", { "class": s.cls.replace("s-", "l-"), "aria-hidden": "true" }));
      li.appendChild(document.createTextNode(s.label));
      ul.appendChild(li);
    });
    return ul;
  }

  var TRAFFIC = [{ key: "rps", cls: "s-rps", label: "requests/s" }];
  var ERRORS = [{ key: "error_pct", cls: "s-err", label: "errors %", gaps: true }];
  var LATENCY = [
    { key: "p50_ms", cls: "s-p50", label: "p50", gaps: true },
    { key: "p95_ms", cls: "s-p95", label: "p95", gaps: true },
    { key: "p99_ms", cls: "s-p99", label: "p99", gaps: true }
  ];

  function chartCard(api) {
    var name = api.api || "(no route)";
    var card = el("article", { "class": "chart-card", id: "chart-" + slug(name), "aria-labelledby": "chart-h-" + slug(name) });
    card.appendChild(el("h3", { id: "chart-h-" + slug(name) }, name));
    var pts = (api.series || []).map(function (p) {
      return { t: p.t, rps: p.rps, error_pct: p.error_rate * 100, p50_ms: p.p50_ms, p95_ms: p.p95_ms, p99_ms: p.p99_ms };
    });
    var figs = [
      [TRAFFIC, "", "Requests per second of " + name + ": now " + fmtRate(api.rps) + " on average"],
      [ERRORS, "%", "Error rate of " + name + " (4xx and 5xx): " + fmtPct(api.error_rate_4xx + api.error_rate_5xx)],
      [LATENCY, "ms", "Latency of " + name + ": p50 " + fmtMs(api.p50_ms) + " ms, p95 " + fmtMs(api.p95_ms) + " ms, p99 " + fmtMs(api.p99_ms) + " ms"]
    ];
    figs.forEach(function (f) {
      var fig = el("figure");
      fig.appendChild(lineChart(pts, f[0], f[1], f[2]));
      var cap = el("figcaption");
      cap.appendChild(legend(f[0]));
      fig.appendChild(cap);
      card.appendChild(fig);
    });
    return card;
  }

  function updateTable(table, apis) {
    var tbody = table.tBodies[0];
    var rows = document.createDocumentFragment();
    apis.forEach(function (a) {
      var tr = el("tr", { "data-api": a.api });
      var th = el("th", { scope: "row" });
      if (a.api) th.appendChild(el("a", { href: "/ui/apis#api-" + slug(a.api) }, a.api));
      else th.appendChild(el("span", { title: "Requests that matched no API" }, "(no route)"));
      tr.appendChild(th);
      [["requests", String(a.requests)], ["rps", fmtRate(a.rps)], ["error_rate_4xx", fmtPct(a.error_rate_4xx)],
       ["error_rate_5xx", fmtPct(a.error_rate_5xx)], ["p50_ms", fmtMs(a.p50_ms)], ["p95_ms", fmtMs(a.p95_ms)],
       ["p99_ms", fmtMs(a.p99_ms)]].forEach(function (c) {
        tr.appendChild(el("td", { "class": "num", "data-k": c[0] }, c[1]));
      });
      rows.appendChild(tr);
    });
    if (!apis.length) {
      var tr = el("tr", { "class": "empty" });
      tr.appendChild(el("td", { colspan: "8" }, "No traffic yet. Send a request through the gateway and it appears here within seconds."));
      rows.appendChild(tr);
    }
    tbody.replaceChildren(rows);
  }

  function startOverview() {
    var table = document.getElementById("api-table");
    var charts = document.getElementById("charts");
    var status = document.getElementById("charts-status");
    if (!table || !charts) return;
    var win = table.getAttribute("data-window") || "1m";
    var busy = false;
    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      fetch("/ui/data/stats?window=" + encodeURIComponent(win), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) { window.location.href = "/ui/login?return=" + encodeURIComponent(location.pathname + location.search); throw new Error("signed out"); }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (rep) {
          var apis = rep.apis.filter(function (a) { return a.requests > 0 || a.api; });
          updateTable(table, apis);
          var frag = document.createDocumentFragment();
          apis.forEach(function (a) { frag.appendChild(chartCard(a)); });
          charts.replaceChildren(frag);
          status.textContent = "Updated " + new Date(rep.generated).toLocaleTimeString() + ".";
        })
        .catch(function (e) { status.textContent = "Could not update the charts (" + e.message + "); retrying."; })
        .finally(function () { busy = false; });
    }
    tick();
    setInterval(tick, 2000);
  }

  function wireCopy() {
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var input = document.getElementById(b.getAttribute("data-copy"));
        input.select();
        var done = function () { b.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, function () {});
        else { try { document.execCommand("copy"); done(); } catch (e) { /* the key stays selected */ } }
      });
    });
  }

  function wireConfirm() {
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireCopy();
    wireConfirm();
    if (document.body.getAttribute("data-page") === "overview") startOverview();
  });
})();
