// SAE feature browser: live search (server) and client-side filtering (static export).
// Corpus text is data: every string goes into the page through textContent, never innerHTML.
(function () {
  "use strict";

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2013";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }

  function cell(text, cls) {
    var td = document.createElement("td");
    if (text !== undefined) td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function renderRows(tbody, features, hrefFor) {
    var rows = features.map(function (f) {
      var tr = document.createElement("tr");
      var idCell = cell();
      var href = hrefFor(f.feature);
      var link = document.createElement(href ? "a" : "span");
      if (href) { link.href = href; link.className = "flink"; } else { link.className = "fnolink"; }
      link.textContent = "#" + f.feature;
      idCell.appendChild(link);
      tr.appendChild(idCell);
      tr.appendChild(cell(fmt(f.density)));
      tr.appendChild(cell(fmt(f.mean_activation)));
      tr.appendChild(cell(fmt(f.max_activation)));
      var chips = cell(undefined, "chips");
      (f.top_tokens || []).forEach(function (t) {
        var s = document.createElement("span");
        s.className = "chip";
        s.textContent = t;
        chips.appendChild(s);
      });
      tr.appendChild(chips);
      if ("explanation" in f) {  // the server's list has an explanation column, the export's not
        var expl = cell(f.explanation || "", "explanation");
        if (f.explanation) {
          var sc = document.createElement("span");
          sc.className = "score";
          sc.textContent = " " + fmt(f.explanation_score);
          expl.appendChild(sc);
        }
        tr.appendChild(expl);
      }
      return tr;
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  // Server feature list: live search through /api/features as the user types.
  var form = document.getElementById("feature-search");
  if (form && form.dataset.api) {
    var table = document.getElementById("feature-table");
    var count = document.getElementById("result-count");
    var pager = document.getElementById("pager");
    var base = form.dataset.featureBase;
    var timer = null, seq = 0;
    var update = function () {
      var params = new URLSearchParams(new FormData(form));
      params.set("page", "1");
      var mine = ++seq;
      fetch(form.dataset.api + "?" + params.toString())
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          if (mine !== seq) return;
          renderRows(table.tBodies[0], data.features, function (id) { return base + id; });
          count.textContent = data.total.toLocaleString("en-US") + " features \u00b7 page " + data.page + " of " + data.pages;
          if (pager) pager.replaceChildren();
          if (data.pages > 1 && pager) {
            var a = document.createElement("a");
            a.rel = "next";
            params.set("page", "2");
            a.href = form.action + "?" + params.toString();
            a.textContent = "next \u2192";
            pager.appendChild(a);
          }
          if (window.history && window.history.replaceState) {
            params.delete("page");
            window.history.replaceState(null, "", form.action + "?" + params.toString());
          }
        })
        .catch(function () { /* keep the server-rendered rows */ });
    };
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 200); });
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(update, 50); });
  }

  // Static export: filter and sort the embedded feature list in the page.
  var dataEl = document.getElementById("feature-data");
  var q = document.getElementById("export-q");
  if (dataEl && q) {
    var all = JSON.parse(dataEl.textContent);
    var tbl = document.getElementById("feature-table");
    var sortSel = document.getElementById("export-sort");
    var cnt = document.getElementById("result-count");
    var fb = tbl.dataset.featureBase, fs = tbl.dataset.featureSuffix;
    var apply = function () {
      var needle = q.value.trim().toLowerCase().replace(/^#/, "");
      var key = sortSel.value;
      var rows = all.filter(function (f) {
        if (!needle) return true;
        if (String(f.feature) === needle) return true;
        return (f.top_tokens || []).some(function (t) { return String(t).toLowerCase().indexOf(needle) >= 0; });
      });
      rows.sort(function (a, b) {
        if (key === "feature") return a.feature - b.feature;
        var x = a[key] === null ? -Infinity : a[key], y = b[key] === null ? -Infinity : b[key];
        return (y - x) || (a.feature - b.feature);
      });
      renderRows(tbl.tBodies[0], rows, function (id) { return fb + id + fs; });
      cnt.textContent = rows.length + " features";
    };
    q.addEventListener("input", apply);
    sortSel.addEventListener("change", apply);
    // the overview's "highest max / mean activation" links carry ?sort=<key>
    var wanted = new URLSearchParams(window.location.search).get("sort");
    if (wanted && Array.prototype.some.call(sortSel.options, function (o) { return o.value === wanted; })) {
      sortSel.value = wanted;
      apply();
    }
  }
})();
