/* wsidist report: the slide table (sort, filter, pages, lazy thumbnails). Every value is put
   into the page with textContent; no HTML is built from data. */
(function () {
  "use strict";
  var data = window.WSIDIST_REPORT;
  if (!data) { return; }
  var fields = data.fields, index = {};
  fields.forEach(function (f, i) { index[f] = i; });
  var columns = data.columns;  // [{key, label, kind, unit}]
  var rows = data.rows;
  var state = { sort: null, dir: 1, filter: "", status: "", flagged: false, page: 0,
                size: data.page_size || 50 };
  var table = document.getElementById("slides");
  var thead = table.querySelector("thead"), tbody = table.querySelector("tbody");
  var pager = document.getElementById("pager"), shown = document.getElementById("shown");
  var fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function val(row, key) { return row[index[key]]; }
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function num(v, kind) {
    if (v === null || v === undefined || v === "") { return "–"; }
    if (kind === "int") { return fmtInt.format(v); }
    if (kind === "pct") { return v.toFixed(1); }
    if (kind === "bytes") {
      var units = ["B", "kB", "MB", "GB", "TB"], i = 0, x = v;
      while (Math.abs(x) >= 1000 && i < units.length - 1) { x /= 1000; i++; }
      return (i ? x.toPrecision(3) : String(Math.round(x))) + " " + units[i];
    }
    return String(parseFloat(Number(v).toPrecision(3)));
  }
  function flaggedRow(row) { return val(row, "status") === "ok" && (val(row, "warning") || val(row, "qc")); }
  var haystack = rows.map(function (row) {
    return ["name", "id", "vendor", "status", "error", "warning", "qc"].map(function (k) {
      return text(val(row, k));
    }).join("\u0001").toLowerCase();
  });

  function header() {
    var tr = document.createElement("tr");
    var th0 = document.createElement("th"); th0.textContent = "thumbnail"; tr.appendChild(th0);
    columns.forEach(function (c) {
      var th = document.createElement("th");
      th.dataset.key = c.key;
      if (c.kind !== "text") { th.className = "n"; }
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = c.label + (c.unit ? " (" + c.unit + ")" : "");
      b.title = "sort by " + c.label;
      b.addEventListener("click", function () {
        if (state.sort === c.key) { state.dir = -state.dir; } else { state.sort = c.key; state.dir = c.kind === "text" ? 1 : -1; }
        state.page = 0; render();
      });
      th.appendChild(b); tr.appendChild(th);
    });
    thead.appendChild(tr);
  }

  function compare(key, dir) {
    var i = index[key];
    return function (a, b) {
      var x = rows[a][i], y = rows[b][i];
      var xm = x === null || x === undefined || x === "", ym = y === null || y === undefined || y === "";
      if (xm || ym) { return xm === ym ? a - b : (xm ? 1 : -1); }  // missing values last
      if (typeof x === "string") { var c = x.localeCompare(y, undefined, { numeric: true }); return c ? c * dir : a - b; }
      return x === y ? a - b : (x < y ? -dir : dir);
    };
  }

  function selected() {
    var q = state.filter.trim().toLowerCase(), out = [];
    for (var r = 0; r < rows.length; r++) {
      if (state.status && val(rows[r], "status") !== state.status) { continue; }
      if (state.flagged && !flaggedRow(rows[r])) { continue; }
      if (q && haystack[r].indexOf(q) < 0) { continue; }
      out.push(r);
    }
    if (state.sort) { out.sort(compare(state.sort, state.dir)); }
    return out;
  }

  function cell(tr, value, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = value;
    tr.appendChild(td);
    return td;
  }

  function rowElement(row) {
    var tr = document.createElement("tr"), id = text(val(row, "id"));
    var page = "slides/" + encodeURIComponent(id) + ".html";
    var tdThumb = document.createElement("td"); tdThumb.className = "thumb";
    if (val(row, "thumb")) {
      var a0 = document.createElement("a"); a0.href = page;
      var img = document.createElement("img");
      img.loading = "lazy"; img.decoding = "async"; img.alt = "";
      img.src = "thumbs/" + encodeURIComponent(id) + ".jpg";
      a0.appendChild(img); tdThumb.appendChild(a0);
    }
    tr.appendChild(tdThumb);
    columns.forEach(function (c) {
      var v = val(row, c.key);
      if (c.key === "name") {
        var td = cell(tr, "", "name"), a = document.createElement("a");
        a.href = page; a.textContent = text(v); td.appendChild(a);
      } else if (c.key === "status") {
        var tds = cell(tr, ""), span = document.createElement("span");
        span.className = "badge " + (v === "ok" ? (flaggedRow(row) ? "warn" : "ok") : "bad");
        span.textContent = text(v); tds.appendChild(span);
      } else if (c.key === "error") {
        var err = val(row, "error"), warn = val(row, "warning");
        cell(tr, text(err || warn), err ? "err" : "err warn");
      } else if (c.kind === "text") {
        cell(tr, text(v));
      } else {
        cell(tr, num(v, c.kind), "n");
      }
    });
    return tr;
  }

  function button(label, page, disabled) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.disabled = disabled;
    b.addEventListener("click", function () { state.page = page; render(); });
    pager.appendChild(b);
  }

  function render() {
    var picked = selected(), pages = Math.max(1, Math.ceil(picked.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * state.size, end = Math.min(picked.length, start + state.size);
    var body = document.createDocumentFragment();
    for (var k = start; k < end; k++) { body.appendChild(rowElement(rows[picked[k]])); }
    tbody.replaceChildren(body);
    thead.querySelectorAll("th[data-key]").forEach(function (th) {
      if (th.dataset.key === state.sort) { th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
    shown.textContent = picked.length ? ("rows " + fmtInt.format(start + 1) + "–" + fmtInt.format(end) + " of " +
      fmtInt.format(picked.length) + (picked.length < rows.length ? " (filtered from " + fmtInt.format(rows.length) + ")" : ""))
      : "no slide matches";
    pager.replaceChildren();
    button("« first", 0, state.page === 0);
    button("‹ previous", state.page - 1, state.page === 0);
    var where = document.createElement("span");
    where.textContent = "page " + (state.page + 1) + " of " + pages;
    pager.appendChild(where);
    button("next ›", state.page + 1, state.page >= pages - 1);
    button("last »", pages - 1, state.page >= pages - 1);
    table.dataset.ready = "1";
  }

  document.getElementById("filter").addEventListener("input", function (e) { state.filter = e.target.value; state.page = 0; render(); });
  document.getElementById("status").addEventListener("change", function (e) { state.status = e.target.value; state.page = 0; render(); });
  document.getElementById("flagged").addEventListener("change", function (e) { state.flagged = e.target.checked; state.page = 0; render(); });
  document.getElementById("pagesize").addEventListener("change", function (e) { state.size = parseInt(e.target.value, 10); state.page = 0; render(); });
  header();
  render();
}());
