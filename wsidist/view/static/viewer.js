/* wsidist view: one slide in OpenSeadragon with toggleable overlays (mask, contours, tile
   grid coloured by any tile column, selection) and, for a rewritten slide, the source and the
   pyramid side by side, synchronised. Values from the server are set with textContent. */
(function () {
  "use strict";
  var key = document.body.dataset.key;
  var state = { layers: {}, grids: {}, ready: false, tilesLoaded: 0, pair: null, svg: null };
  window.wsidistViewer = state;
  var $ = function (id) { return document.getElementById(id); };
  var SVGNS = "http://www.w3.org/2000/svg";

  function status(text) { $("status").textContent = text; }
  function getJSON(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) { throw new Error(url + ": HTTP " + r.status); }
      return r.json();
    });
  }

  function makeViewer(id, dzi) {
    var v = OpenSeadragon({
      id: id, prefixUrl: "/static/openseadragon/images/", tileSources: dzi,
      drawer: "canvas", imageSmoothingEnabled: false, showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT", maxZoomPixelRatio: 4, visibilityRatio: 0.5,
      animationTime: 0.5, timeout: 60000, gestureSettingsMouse: { clickToZoom: false }
    });
    v.addHandler("tile-loaded", function () { state.tilesLoaded++; document.body.dataset.tiles = String(state.tilesLoaded); });
    return v;
  }

  function nice(x) {
    var k = Math.pow(10, Math.floor(Math.log10(x)));
    var m = [5, 2, 1].find(function (m) { return m * k <= x; }) || 1;
    return m * k;
  }

  function updateScale(info, viewer) {
    var zoom = viewer.world.getItemAt(0).viewportToImageZoom(viewer.viewport.getZoom(true));
    $("zoom").textContent = "zoom " + (zoom >= 1 ? zoom.toFixed(1) : zoom.toPrecision(2)) + "× of level 0" +
      (info.mpp ? " (≈ " + (10 / info.mpp * zoom).toPrecision(2) + "× objective equivalent)" : "");
    if (!info.mpp) { $("scalebar-text").textContent = "unknown (no µm per pixel)"; return; }
    var umPerScreenPx = info.mpp / zoom, um = nice(150 * umPerScreenPx);
    $("scalebar-bar").style.width = Math.round(um / umPerScreenPx) + "px";
    $("scalebar-text").textContent = um >= 1000 ? (um / 1000) + " mm" : um + " µm";
  }

  function addImageLayer(viewer, name, url, widthPx0, info, opacity) {
    return new Promise(function (resolve, reject) {
      viewer.addTiledImage({
        tileSource: { type: "image", url: url, buildPyramid: false },
        x: 0, y: 0, width: widthPx0 / info.width, opacity: opacity,
        success: function (e) { state.layers[name] = e.item; resolve(e.item); },
        error: function (e) { reject(new Error(name + ": " + (e.message || "failed"))); }
      });
    });
  }

  function removeLayer(viewer, name) {
    if (state.layers[name]) { viewer.world.removeItem(state.layers[name]); delete state.layers[name]; }
  }

  function ensureSvg(viewer, info) {
    if (state.svg) { return state.svg; }
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "wsidist-overlay");
    svg.setAttribute("viewBox", "0 0 " + info.width + " " + info.height);
    svg.setAttribute("preserveAspectRatio", "none");
    viewer.addOverlay({ element: svg, location: new OpenSeadragon.Rect(0, 0, 1, info.height / info.width) });
    state.svg = svg;
    return svg;
  }

  function ringPath(rings) {
    return rings.map(function (ring) {
      return "M" + ring.map(function (p) { return p[0] + " " + p[1]; }).join("L") + "Z";
    }).join("");
  }

  function addContours(viewer, info) {
    return getJSON("/api/" + encodeURIComponent(key) + "/contours.geojson").then(function (doc) {
      var g = document.createElementNS(SVGNS, "g");
      g.setAttribute("id", "contours");
      doc.features.forEach(function (f) {
        var polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
        polys.forEach(function (rings) {
          var path = document.createElementNS(SVGNS, "path");
          path.setAttribute("d", ringPath(rings));
          path.setAttribute("fill", "none"); path.setAttribute("stroke", "#00e65a");
          path.setAttribute("stroke-width", "2.5"); path.setAttribute("vector-effect", "non-scaling-stroke");
          path.setAttribute("fill-rule", "evenodd");
          g.appendChild(path);
        });
      });
      ensureSvg(viewer, info).appendChild(g);
      state.contours = g;
      return doc.features.length;
    });
  }

  function addSelection(viewer, info) {
    return getJSON("/api/" + encodeURIComponent(key) + "/selection.json").then(function (boxes) {
      var g = document.createElementNS(SVGNS, "g");
      g.setAttribute("id", "selection");
      boxes.forEach(function (b) {
        var r = document.createElementNS(SVGNS, "rect");
        r.setAttribute("x", b.x); r.setAttribute("y", b.y); r.setAttribute("width", b.w); r.setAttribute("height", b.h);
        r.setAttribute("fill", "none"); r.setAttribute("stroke", "#1e6edc"); r.setAttribute("stroke-width", "3");
        r.setAttribute("vector-effect", "non-scaling-stroke");
        var t = document.createElementNS(SVGNS, "title");
        t.textContent = "rank " + b.rank + ", score " + Number(b.score).toPrecision(3);
        r.appendChild(t); g.appendChild(r);
      });
      ensureSvg(viewer, info).appendChild(g);
      state.selection = g;
      return boxes.length;
    });
  }

  function legend(meta) {
    var body = $("legend-body");
    body.replaceChildren();
    $("legend").hidden = !meta;
    if (!meta) { return; }
    var title = document.createElement("div");
    title.textContent = "tile " + meta.column.replace(/_/g, " ");
    body.appendChild(title);
    if (meta.kind === "class") {
      Object.keys(meta.legend).forEach(function (name) {
        var row = document.createElement("div"), sw = document.createElement("span");
        sw.className = "sw"; sw.style.background = "rgb(" + meta.legend[name].join(",") + ")";
        row.appendChild(sw); row.appendChild(document.createTextNode(name)); body.appendChild(row);
      });
      return;
    }
    var ramp = document.createElement("div");
    ramp.className = "ramp";
    ramp.style.background = "linear-gradient(to right, " + meta.colors.map(function (c) { return "rgb(" + c.join(",") + ")"; }).join(", ") + ")";
    var ends = document.createElement("div"), lo = document.createElement("span"), hi = document.createElement("span");
    ends.className = "ends"; lo.textContent = Number(meta.lo).toPrecision(3); hi.textContent = Number(meta.hi).toPrecision(3);
    ends.appendChild(lo); ends.appendChild(hi);
    body.appendChild(ramp); body.appendChild(ends);
    var note = document.createElement("div"); note.className = "hint";
    note.textContent = "tiles without tissue are not coloured";
    body.appendChild(note);
  }

  function showGrid(viewer, info) {
    var column = $("grid-column").value, on = $("show-grid").checked;
    removeLayer(viewer, "grid");
    if (!on) { legend(null); return Promise.resolve(); }
    var base = "/api/" + encodeURIComponent(key) + "/grid";
    var q = "?column=" + encodeURIComponent(column);
    return getJSON(base + ".json" + q).then(function (meta) {
      legend(meta);
      return addImageLayer(viewer, "grid", base + ".png" + q, meta.width_px0, info, $("opacity").value / 100);
    });
  }

  function setupOverlays(viewer, info) {
    var L = info.layers, jobs = [];
    ["mask", "contours", "grid", "selection"].forEach(function (name) {
      var box = $("show-" + name);
      box.disabled = !L[name];
      if (!L[name]) { box.checked = false; box.parentNode.title = "not in this output"; }
    });
    if (L.grid) {
      L.grid.columns.forEach(function (c) {
        var o = document.createElement("option"); o.value = c; o.textContent = c.replace(/_/g, " ");
        if (c === "score") { o.selected = true; }
        $("grid-column").appendChild(o);
      });
      $("show-grid").checked = true;
    }
    $("grid-column").disabled = !L.grid;
    if (L.mask) {
      jobs.push(addImageLayer(viewer, "mask", "/api/" + encodeURIComponent(key) + "/mask.png",
        Math.ceil(info.width / L.mask.scale) * L.mask.scale, info, 0));
    }
    if (L.contours) { jobs.push(addContours(viewer, info)); }
    if (L.selection) { jobs.push(addSelection(viewer, info)); }
    if (L.grid) { jobs.push(showGrid(viewer, info)); }
    $("show-mask").addEventListener("change", function (e) { if (state.layers.mask) { state.layers.mask.setOpacity(e.target.checked ? 1 : 0); } });
    $("show-contours").addEventListener("change", function (e) { if (state.contours) { state.contours.style.display = e.target.checked ? "" : "none"; } });
    $("show-selection").addEventListener("change", function (e) { if (state.selection) { state.selection.style.display = e.target.checked ? "" : "none"; } });
    $("show-grid").addEventListener("change", function () { showGrid(viewer, info).catch(fail); });
    $("grid-column").addEventListener("change", function () { showGrid(viewer, info).catch(fail); });
    $("opacity").addEventListener("input", function (e) { if (state.layers.grid) { state.layers.grid.setOpacity(e.target.value / 100); } });
    return Promise.all(jobs);
  }

  function synchronise(a, b) {
    var busy = false;
    function follow(src, dst) {
      src.addHandler("viewport-change", function () {
        if (busy) { return; }
        busy = true;
        dst.viewport.zoomTo(src.viewport.getZoom(), null, true);
        dst.viewport.panTo(src.viewport.getCenter(), true);
        busy = false;
      });
    }
    follow(a, b); follow(b, a);
  }

  function setupCompare(viewer, info) {
    if (!info.pair) { return; }
    $("compare-box").hidden = false;
    $("pair-name").textContent = info.pair.name;
    var toggle = $("compare");
    function apply() {
      $("view-pair").hidden = !toggle.checked;
      if (toggle.checked && !state.pair) {
        $("caption-pair").textContent = info.pair.name;
        state.pair = makeViewer("osd-pair", info.pair.dzi);
        state.pair.addHandler("open", function () {
          state.pair.viewport.zoomTo(viewer.viewport.getZoom(), null, true);
          state.pair.viewport.panTo(viewer.viewport.getCenter(), true);
          synchronise(viewer, state.pair);
          document.body.dataset.pairOpen = "1";
        });
      }
      window.dispatchEvent(new Event("resize"));
    }
    toggle.addEventListener("change", apply);
    function fromHash() { if (location.hash === "#compare" && !toggle.checked) { toggle.checked = true; apply(); } }
    window.addEventListener("hashchange", fromHash);
    fromHash();
  }

  function fail(err) { status("error: " + err.message); console.error(err); }

  getJSON("/api/" + encodeURIComponent(key) + "/info").then(function (info) {
    $("meta").textContent = info.width.toLocaleString("en-US") + " × " + info.height.toLocaleString("en-US") + " px · " +
      (info.mpp ? info.mpp.toPrecision(3) + " µm/px · " : "") + info.vendor + " (" + info.backend + ")";
    $("caption-main").textContent = info.name;
    var viewer = makeViewer("osd-main", info.dzi);
    state.main = viewer;
    viewer.addHandler("animation", function () { updateScale(info, viewer); });
    viewer.addHandler("open", function () {
      updateScale(info, viewer);
      setupOverlays(viewer, info).then(function () {
        state.ready = true; document.body.dataset.ready = "1"; status("");
      }).catch(fail);
      setupCompare(viewer, info);
    });
    viewer.addHandler("open-failed", function (e) { fail(new Error("cannot open the slide: " + (e.message || ""))); });
  }).catch(fail);
}());
