/* neuralatlas report: draws the plots, the interactive projections and the layer picker.
 * Everything it reads is inline JSON in the page; it fetches nothing. Script errors are
 * shown at the top of the page and counted in <html data-na-errors>, so a headless test
 * (or a reader) sees them. */
(function () {
  "use strict";

  var root = document.documentElement;
  var errors = [];

  function reportError(message) {
    errors.push(String(message));
    var box = document.getElementById("na-errors");
    if (box) {
      box.hidden = false;
      box.textContent = "Script errors:\n" + errors.join("\n");
    }
    root.setAttribute("data-na-errors", String(errors.length));
  }
  window.addEventListener("error", function (e) { reportError(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) {
    reportError("unhandled rejection: " + ((e.reason && e.reason.message) || e.reason));
  });

  function readJSON(el) { return JSON.parse(el.textContent); }

  function epochKey(e) { return e === null ? "final" : String(e); }

  /* ------------------------------------------------------------------ charts
   * A small SVG chart, enough for the report's plots (scatter per class, training lines
   * on two y axes): axes with ticks, a clickable legend, nearest-point hover, wheel zoom,
   * drag pan and double-click reset. It replaces plotly.js, which weighed 4.8 MB of the
   * page for these two kinds of plot. A spec is plotly-like: {data: [trace], layout}. */
  var SVGNS = "http://www.w3.org/2000/svg";
  var charts = [];

  function svg(tag, attrs, parent) {
    var el = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function niceTicks(lo, hi, n, minStep) {
    var span = hi - lo;
    if (!(span > 0)) { return [lo]; }
    var step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = span / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    if (minStep && step < minStep) { step = minStep; }  // integer axes (epochs) show no 0.5
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) { out.push(+v.toPrecision(12)); }
    return out;
  }

  function fmtTick(v, ticks) {
    var step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
    var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
    return v.toFixed(d);
  }

  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (arr) {
      for (var i = 0; i < arr.length; i++) {
        var v = arr[i];
        if (v !== null && isFinite(v)) { if (v < lo) { lo = v; } if (v > hi) { hi = v; } }
      }
    });
    if (lo === Infinity) { return [0, 1]; }
    if (lo === hi) { return [lo - 0.5, hi + 0.5]; }
    var pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  }

  function Chart(div, handlers) {
    var self = { div: div, data: [], layout: {}, hidden: {}, view: null, revision: null, handlers: handlers || {} };
    div.classList.add("na-chart");
    var box = document.createElement("div");
    box.className = "na-chart-box";
    div.appendChild(box);
    var legend = document.createElement("div");
    legend.className = "na-legend";
    div.appendChild(legend);
    var host = svg("svg", { "class": "na-chart-svg", role: "img" });
    box.appendChild(host);
    var pts = [];  // visible points: {px, py, trace, j}
    var geom = null;

    function axisRange(traces, key, axis) {
      var lay = self.layout[axis] || {};
      if (lay.range) { return lay.range.slice(); }
      var vals = traces.map(function (t) { return t[key]; });
      var r = extent(vals);
      if (lay.rangemode === "tozero") { r[0] = Math.min(0, r[0]); }
      return r;
    }

    function draw() {
      var L = self.layout, width = Math.max(200, div.clientWidth || 600), height = L.height || 320;
      var visible = self.data.filter(function (t) { return !self.hidden[t.name]; });
      var hasY2 = self.data.some(function (t) { return t.yaxis === "y2"; });
      var ticks = !(L.xaxis && L.xaxis.showticklabels === false);
      var m = { l: ticks ? 52 : 12, r: hasY2 ? 52 : 12, t: L.title ? 26 : 8, b: ticks ? 40 : 12 };
      var w = width - m.l - m.r, h = height - m.t - m.b;
      var x1 = visible.filter(function (t) { return t.yaxis !== "y2"; });
      var x2 = visible.filter(function (t) { return t.yaxis === "y2"; });
      var xr = axisRange(visible, "x", "xaxis"), yr = axisRange(x1, "y", "yaxis");
      var y2r = hasY2 ? axisRange(x2, "y", "yaxis2") : null;
      if (L.yaxis && L.yaxis.scaleanchor) {  // one unit is as long across as up
        var ux = (xr[1] - xr[0]) / w, uy = (yr[1] - yr[0]) / h, u = Math.max(ux, uy);
        var cx = (xr[0] + xr[1]) / 2, cy = (yr[0] + yr[1]) / 2;
        xr = [cx - u * w / 2, cx + u * w / 2];
        yr = [cy - u * h / 2, cy + u * h / 2];
      }
      if (self.view) { xr = self.view.x.slice(); yr = self.view.y.slice(); }
      geom = { m: m, w: w, h: h, xr: xr, yr: yr, y2r: y2r };
      var sx = function (v) { return m.l + (v - xr[0]) / (xr[1] - xr[0]) * w; };
      var sy = function (v, r) { r = r || yr; return m.t + h - (v - r[0]) / (r[1] - r[0]) * h; };
      while (host.firstChild) { host.removeChild(host.firstChild); }
      host.setAttribute("width", width);
      host.setAttribute("height", height);
      host.setAttribute("viewBox", "0 0 " + width + " " + height);
      svg("rect", { x: m.l, y: m.t, width: w, height: h, "class": "na-plotarea" }, host);
      if (L.title) {
        var tt = svg("text", { x: m.l, y: 17, "class": "na-chart-title" }, host);
        tt.textContent = L.title.text || L.title;
      }
      if (ticks) {
        niceTicks(xr[0], xr[1], Math.max(2, Math.floor(w / 80)), (L.xaxis || {}).dtick).forEach(function (v, i, all) {
          var x = sx(v);
          svg("line", { x1: x, x2: x, y1: m.t, y2: m.t + h, "class": "na-grid" }, host);
          svg("text", { x: x, y: m.t + h + 14, "class": "na-tick", "text-anchor": "middle" }, host).textContent = fmtTick(v, all);
        });
        [[yr, m.l - 5, "end", true], [y2r, m.l + w + 5, "start", false]].forEach(function (a) {
          if (!a[0]) { return; }
          niceTicks(a[0][0], a[0][1], Math.max(2, Math.floor(h / 50))).forEach(function (v, i, all) {
            var y = sy(v, a[0]);
            if (a[3]) { svg("line", { x1: m.l, x2: m.l + w, y1: y, y2: y, "class": "na-grid" }, host); }
            svg("text", { x: a[1], y: y + 4, "class": "na-tick", "text-anchor": a[2] }, host).textContent = fmtTick(v, all);
          });
        });
        var lab = function (axis) { var a = L[axis] || {}; return a.title ? (a.title.text || a.title) : ""; };
        if (lab("xaxis")) { svg("text", { x: m.l + w / 2, y: height - 6, "class": "na-axis-title", "text-anchor": "middle" }, host).textContent = lab("xaxis"); }
        if (lab("yaxis")) { svg("text", { transform: "translate(13," + (m.t + h / 2) + ") rotate(-90)", "class": "na-axis-title", "text-anchor": "middle" }, host).textContent = lab("yaxis"); }
        if (hasY2 && lab("yaxis2")) { svg("text", { transform: "translate(" + (width - 8) + "," + (m.t + h / 2) + ") rotate(90)", "class": "na-axis-title", "text-anchor": "middle" }, host).textContent = lab("yaxis2"); }
      }
      var clip = "na-clip-" + charts.indexOf(self) + "-" + Math.random().toString(36).slice(2, 7);
      svg("rect", { x: m.l, y: m.t, width: w, height: h }, svg("clipPath", { id: clip }, svg("defs", {}, host)));
      var g = svg("g", { "clip-path": "url(#" + clip + ")" }, host);
      pts = [];
      visible.forEach(function (t) {
        var r = t.yaxis === "y2" ? y2r : yr, mode = t.mode || "markers", color = (t.marker && t.marker.color) || (t.line && t.line.color) || t._color;
        if (mode.indexOf("lines") >= 0) {
          var d = "", pen = false;
          for (var j = 0; j < t.x.length; j++) {
            if (t.y[j] === null || !isFinite(t.y[j])) { pen = false; continue; }
            d += (pen ? "L" : "M") + sx(t.x[j]).toFixed(1) + "," + sy(t.y[j], r).toFixed(1);
            pen = true;
          }
          svg("path", { d: d, fill: "none", stroke: color, "stroke-width": 1.8,
            "stroke-dasharray": t.line && t.line.dash === "dot" ? "2,3" : "none" }, g);
        }
        if (mode.indexOf("markers") >= 0) {
          var size = (t.marker && t.marker.size) || 6, rad = size / 2;
          var sym = t.marker && t.marker.symbol, op = (t.marker && t.marker.opacity) || 1;
          var tg = svg("g", { fill: color, stroke: color, "fill-opacity": op }, g);
          for (var k = 0; k < t.x.length; k++) {
            if (t.y[k] === null || !isFinite(t.y[k])) { continue; }
            var px = sx(t.x[k]), py = sy(t.y[k], r), s = Array.isArray(sym) ? sym[k] : sym;
            var el = s === "x"
              ? svg("path", { d: "M" + (px - rad) + "," + (py - rad) + "l" + size + "," + size + "m0," + (-size) + "l" + (-size) + "," + size, "stroke-width": 1.6, fill: "none" }, tg)
              : svg("circle", { cx: px.toFixed(1), cy: py.toFixed(1), r: rad, "stroke-width": 0 }, tg);
            el.setAttribute("class", "na-pt");
            pts.push({ px: px, py: py, trace: t, j: k });
          }
        }
      });
      if (self.mark) { drawMark(); }
    }

    function drawMark() {
      var old = host.querySelector(".na-mark");
      if (old) { old.parentNode.removeChild(old); }
      var hit = pts.filter(function (p) { return p.trace.customdata && p.trace.customdata[p.j] === self.mark; })[0];
      if (hit) { svg("circle", { cx: hit.px, cy: hit.py, r: 9, "class": "na-mark" }, host); }
    }

    function drawLegend() {
      legend.innerHTML = "";
      if (self.layout.showlegend === false) { return; }
      self.data.forEach(function (t) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "na-legend-item" + (self.hidden[t.name] ? " na-off" : "");
        var sw = document.createElement("span");
        sw.className = "na-swatch";
        sw.style.background = (t.marker && t.marker.color) || t._color;
        b.appendChild(sw);
        b.appendChild(document.createTextNode(t.name));
        b.title = "click to hide or show " + t.name;
        b.addEventListener("click", function () { self.hidden[t.name] = !self.hidden[t.name]; drawLegend(); draw(); });
        legend.appendChild(b);
      });
    }

    function nearest(clientX, clientY) {
      var r = host.getBoundingClientRect(), x = clientX - r.left, y = clientY - r.top, best = null, bd = 144;
      for (var i = 0; i < pts.length; i++) {
        var dx = pts[i].px - x, dy = pts[i].py - y, dd = dx * dx + dy * dy;
        if (dd < bd) { bd = dd; best = pts[i]; }
      }
      return best;
    }

    var drag = null;
    host.addEventListener("mousemove", function (ev) {
      if (drag) {
        var dx = (ev.clientX - drag.x) / geom.w * (drag.xr[1] - drag.xr[0]);
        var dy = (ev.clientY - drag.y) / geom.h * (drag.yr[1] - drag.yr[0]);
        self.view = { x: [drag.xr[0] - dx, drag.xr[1] - dx], y: [drag.yr[0] + dy, drag.yr[1] + dy] };
        draw();
        return;
      }
      var p = nearest(ev.clientX, ev.clientY);
      if (p && self.handlers.hover) {
        var r = host.getBoundingClientRect();
        self.handlers.hover(p, r.left + p.px, r.top + p.py);
      } else if (!p && self.handlers.unhover) { self.handlers.unhover(); }
    });
    host.addEventListener("mouseleave", function () { drag = null; if (self.handlers.unhover) { self.handlers.unhover(); } });
    if (self.handlers.zoom) {
      host.addEventListener("wheel", function (ev) {
        if (!geom) { return; }
        ev.preventDefault();
        var r = host.getBoundingClientRect(), f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
        var fx = (ev.clientX - r.left - geom.m.l) / geom.w, fy = 1 - (ev.clientY - r.top - geom.m.t) / geom.h;
        var xr = geom.xr, yr = geom.yr, cx = xr[0] + fx * (xr[1] - xr[0]), cy = yr[0] + fy * (yr[1] - yr[0]);
        self.view = { x: [cx - (cx - xr[0]) * f, cx + (xr[1] - cx) * f], y: [cy - (cy - yr[0]) * f, cy + (yr[1] - cy) * f] };
        draw();
      }, { passive: false });
      host.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, y: ev.clientY, xr: geom.xr.slice(), yr: geom.yr.slice() }; ev.preventDefault(); });
      host.addEventListener("mouseup", function () { drag = null; });
      host.addEventListener("dblclick", function () { self.view = null; draw(); });
    }

    self.react = function (data, layout) {
      data.forEach(function (t, i) { t._color = PALETTE[i % PALETTE.length]; });
      if (layout.uirevision === undefined || layout.uirevision !== self.revision) { self.view = null; }
      self.revision = layout.uirevision;
      self.data = data;
      self.layout = layout;
      drawLegend();
      draw();
      return Promise.resolve(self);
    };
    self.redraw = function () { if (div.offsetParent !== null) { draw(); } };
    self.markPoint = function (id) { self.mark = id; drawMark(); };
    self.points = function () { return pts; };
    charts.push(self);
    return self;
  }

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.redraw(); }); });

  /* ------------------------------------------------------------------ static plots */
  function drawPlots() {
    var drawn = [];
    document.querySelectorAll(".na-plot-wrap").forEach(function (wrap) {
      var spec = readJSON(wrap.querySelector(".na-plot-spec"));
      var c = Chart(wrap.querySelector(".na-plot"), {
        hover: function (p, x, y) {
          var t = p.trace;
          showHover(null, 0, t.name + ": " + (t.text ? t.text[p.j] : t.x[p.j]) + ", " + (+t.y[p.j]).toPrecision(4), x, y);
        },
        unhover: hideHover
      });
      drawn.push(c.react(spec.data, spec.layout));
    });
    return drawn;
  }

  /* ------------------------------------------------------------------ hover thumbnail */
  var hoverBox = document.getElementById("na-hover");

  function showHover(d, p, text, x, y) {
    var img = hoverBox.querySelector(".na-hover-img");
    if (d && d.sprite) {
      var s = d.sprite;
      var scale = Math.max(1, Math.floor(96 / Math.max(s.w, s.h)));
      var col = p % s.cols, row = Math.floor(p / s.cols);
      img.style.width = s.w * scale + "px";
      img.style.height = s.h * scale + "px";
      img.style.backgroundImage = "url(" + s.uri + ")";
      img.style.backgroundSize = s.cols * s.w * scale + "px auto";
      img.style.backgroundPosition = -col * s.w * scale + "px " + -row * s.h * scale + "px";
      img.hidden = false;
    } else {
      img.hidden = true;
    }
    hoverBox.querySelector(".na-hover-text").textContent = text;
    hoverBox.hidden = false;
    var w = hoverBox.offsetWidth, h = hoverBox.offsetHeight;
    var left = x + 16, top = y + 16;
    if (left + w > window.innerWidth) { left = x - w - 16; }
    if (top + h > window.innerHeight) { top = y - h - 16; }
    hoverBox.style.left = Math.max(0, left) + "px";
    hoverBox.style.top = Math.max(0, top) + "px";
  }

  function hideHover() { hoverBox.hidden = true; }

  // the sentence (or token in context) of a text point, on lines of its own (already wrapped;
  // the hover box sets textContent, so the text needs no escaping)
  function hoverText(d, p) {
    if (!d.texts || d.texts[p] === undefined || d.texts[p] === null) { return ""; }
    return "\n" + String(d.texts[p]);
  }

  /* ------------------------------------------------------------------ projections */
  // One layer/epoch's coordinates from the payload (report/projection.py, encode_xy): uint16
  // codes, little-endian, in base64; lo + code * step per axis, 65535 = none (NaN).
  function decodeXY(e) {
    var s = atob(e.q), n = s.length >> 1, out = new Float64Array(n);
    for (var i = 0; i < n; i++) {
      var v = s.charCodeAt(2 * i) | (s.charCodeAt(2 * i + 1) << 8);
      out[i] = v === 65535 ? NaN : e.lo[i & 1] + v * e.step[i & 1];
    }
    return out;
  }

  function Projection(el) {
    var d = readJSON(el.querySelector(".na-proj-data"));
    var plot = el.querySelector(".na-proj-plot");
    var layerIn = el.querySelector(".na-proj-layer");
    var epochIn = el.querySelector(".na-proj-epoch");
    var layerOut = el.querySelector(".na-proj-layer-name");
    var epochOut = el.querySelector(".na-proj-epoch-name");
    var scoreOut = el.querySelector(".na-proj-score");
    var play = el.querySelector(".na-proj-play");
    var lookup = {};
    d.keys.forEach(function (k, i) { lookup[k[0] + "\u0000" + epochKey(k[1])] = i; });
    // point positions per class, once: a trace per class gives the legend's show/hide
    var byClass = d.classes.map(function () { return []; });
    var other = [];
    d.labels.forEach(function (c, i) { (c >= 0 && c < byClass.length ? byClass[c] : other).push(i); });
    var groups = byClass.map(function (idx, c) { return { name: d.classes[c], idx: idx, color: d.colors[c % d.colors.length] }; });
    if (other.length) { groups.push({ name: "unlabelled", idx: other, color: "#888888" }); }
    var chart = Chart(plot, {
      zoom: true,
      hover: function (pt, x, y) { showHover(d, pt.trace.customdata[pt.j], pt.trace.text[pt.j], x, y); },
      unhover: hideHover
    });

    function current() {
      return {
        layer: d.layers[layerIn ? +layerIn.value : 0],
        epoch: d.epochs[epochIn ? +epochIn.value : d.epochs.length - 1]
      };
    }

    function render() {
      var cur = current();
      layerOut.textContent = cur.layer;
      if (epochOut) { epochOut.textContent = epochKey(cur.epoch); }
      var k = lookup[cur.layer + "\u0000" + epochKey(cur.epoch)];
      if (k === undefined) {
        scoreOut.textContent = "not projected at this layer and epoch";
        return chart.react([], { height: 520 });
      }
      if (!(d.xy[k] instanceof Float64Array)) { d.xy[k] = decodeXY(d.xy[k]); }  // decoded when first shown
      var xy = d.xy[k];
      var pred = d.pred[epochKey(cur.epoch)] || null;
      var traces = groups.map(function (g) {
        // correct points first: the legend draws a class with its first point's symbol
        var order = g.idx.filter(function (p) { return !pred || pred[p] < 0 || pred[p] === d.labels[p]; });
        order = order.concat(g.idx.filter(function (p) { return pred && pred[p] >= 0 && pred[p] !== d.labels[p]; }));
        var n = order.length, x = new Array(n), y = new Array(n), sym = new Array(n),
          text = new Array(n), cd = new Array(n);
        for (var j = 0; j < n; j++) {
          var p = order[j], label = d.labels[p], pr = pred ? pred[p] : -1;
          x[j] = xy[2 * p];
          y[j] = xy[2 * p + 1];
          sym[j] = pr >= 0 && pr !== label ? "x" : "circle";
          text[j] = "sample " + d.index[p] + " · label " + (d.classes[label] !== undefined ? d.classes[label] : label) +
            " · predicted " + (pr >= 0 ? d.classes[pr] : "?") + hoverText(d, p);
          cd[j] = p;
        }
        return {
          type: "scatter", mode: "markers", name: g.name, x: x, y: y, text: text, customdata: cd,
          marker: { color: g.color, symbol: sym, size: 7, opacity: 0.85 }
        };
      });
      var q = d.quality[k] || {};
      scoreOut.textContent = Object.keys(q).map(function (name) {
        return name.replace(/_/g, " ") + " " + (q[name] === null ? "–" : q[name].toFixed(3));
      }).join(" · ");
      var layout = {
        height: 520,
        uirevision: cur.layer,  // zoom is kept while the epoch changes, reset for another layer
        xaxis: { showticklabels: false },
        yaxis: { showticklabels: false, scaleanchor: "x" }
      };
      return chart.react(traces, layout);
    }

    var timer = null;
    function togglePlay() {
      if (timer !== null) { clearInterval(timer); timer = null; play.textContent = "▶ play"; return; }
      if (+epochIn.value >= +epochIn.max) { epochIn.value = "0"; render(); }
      play.textContent = "❚❚ pause";
      timer = setInterval(function () {
        if (+epochIn.value >= +epochIn.max) { togglePlay(); return; }
        epochIn.value = String(+epochIn.value + 1);
        render();
      }, 700);
    }

    if (layerIn) { layerIn.addEventListener("input", render); }
    if (epochIn) { epochIn.addEventListener("input", render); }
    if (play) { play.addEventListener("click", togglePlay); }

    var ready = render();

    return {
      el: el, data: d, plot: plot, chart: chart, ready: ready, render: render,
      // ring one sample (its data-set index) in the projection, e.g. from the misclassified gallery
      mark: function (index) {
        var p = d.index.indexOf(index);
        chart.markPoint(p >= 0 ? p : null);
        return p >= 0;
      },
      focus: function (model, layer) {
        if (model && model !== d.model) { return; }
        var i = layer ? d.layers.indexOf(layer) : -1;
        if (i >= 0 && layerIn && +layerIn.value !== i) { layerIn.value = String(i); render(); }
      }
    };
  }

  /* ------------------------------------------------------------------ layer picker */
  function initPicker(projections) {
    var layersOf = readJSON(document.getElementById("na-picker-data"));
    var modelSel = document.getElementById("na-pick-model");
    var layerSel = document.getElementById("na-pick-layer");

    function fillLayers() {
      var keep = layerSel.value, names = [];
      Object.keys(layersOf).forEach(function (m) {
        if (!modelSel.value || modelSel.value === m) {
          layersOf[m].forEach(function (l) { if (names.indexOf(l) < 0) { names.push(l); } });
        }
      });
      while (layerSel.options.length > 1) { layerSel.remove(1); }
      names.forEach(function (l) { layerSel.add(new Option(l, l)); });
      layerSel.value = names.indexOf(keep) >= 0 ? keep : "";
    }

    function apply() {
      var m = modelSel.value, l = layerSel.value;
      document.querySelectorAll("main [data-model], main [data-layer]").forEach(function (el) {
        var otherModel = m && el.dataset.model && el.dataset.model !== m;
        var otherLayer = l && el.dataset.layer && el.dataset.layer !== l;
        if (el.tagName === "TR" && el.closest("#run")) {  // the run's layer tables highlight instead
          el.classList.toggle("na-hl", !!(l && el.dataset.layer === l));
          return;
        }
        el.hidden = !!(otherModel || otherLayer);
      });
      projections.forEach(function (p) { p.focus(m, l); });
      document.querySelectorAll(".na-section[data-analysis]").forEach(function (sec) {
        var shown = Array.prototype.some.call(
          sec.querySelectorAll(".na-fig, .na-proj, .na-plot-wrap, tbody tr"),
          function (el) { return el.offsetParent !== null; });
        sec.querySelector(".na-empty").hidden = shown || !(m || l);
      });
      charts.forEach(function (c) { c.redraw(); });
    }

    modelSel.addEventListener("change", function () { fillLayers(); apply(); });
    layerSel.addEventListener("change", apply);
    fillLayers();
  }

  /* ------------------------------------------------------------------ self-test */
  // With #na-selftest in the URL the page hovers a projection point and moves a slider
  // itself, and records what happened on <html>, for the headless-browser test.
  function selfTest(projections) {
    if (location.hash !== "#na-selftest") { return Promise.resolve(); }
    root.setAttribute("data-na-min-font-pt", minFontPt());
    var p = projections[0];
    if (!p) { root.setAttribute("data-na-hover", "no-projection"); return Promise.resolve(); }
    // a real mouse move over the first point: the same path a reader's mouse takes
    var host = p.plot.querySelector("svg.na-chart-svg"), first = p.chart.points()[0];
    root.setAttribute("data-na-proj-points", String(p.plot.querySelectorAll(".na-pt").length));
    var r = host.getBoundingClientRect();
    host.dispatchEvent(new MouseEvent("mousemove", {
      bubbles: true, cancelable: true, view: window, clientX: r.left + first.px, clientY: r.top + first.py
    }));
    return new Promise(function (resolve) { setTimeout(resolve, 200); }).then(function () {
      var img = hoverBox.querySelector(".na-hover-img");
      var state = hoverBox.hidden ? "none" : (!img.hidden && img.style.backgroundImage.indexOf("data:image/png") >= 0 ? "image" : "text");
      root.setAttribute("data-na-hover", p.data.sprite ? state : "no-sprite");
      hideHover();
      var layerIn = p.el.querySelector(".na-proj-layer");
      if (!layerIn || layerIn.disabled) { root.setAttribute("data-na-slider", "single-layer"); return null; }
      var before = p.chart.data[0].x[0];
      layerIn.value = "0";
      return p.render().then(function () {
        root.setAttribute("data-na-slider", p.chart.data[0].x[0] !== before ? "moved" : "same");
        pickerTest(p);
        galleryTest(projections);
      });
    });
  }

  function modelOf(el) {
    var m = el.closest("[data-model]");
    return m ? m.dataset.model : null;
  }

  // choose the last projected layer in the picker: the projection follows, other layers hide
  function pickerTest(p) {
    var modelSel = document.getElementById("na-pick-model");
    var layerSel = document.getElementById("na-pick-layer");
    var layer = p.data.layers[p.data.layers.length - 1];
    modelSel.value = p.data.model;
    modelSel.dispatchEvent(new Event("change"));
    layerSel.value = layer;
    layerSel.dispatchEvent(new Event("change"));
    var layerIn = p.el.querySelector(".na-proj-layer");
    var others = document.querySelectorAll("main [data-layer]:not([data-layer='" + CSS.escape(layer) + "'])");
    // this layer of the chosen model; another model's layer of the same name hides with its model
    var mine = Array.prototype.filter.call(
      document.querySelectorAll("main [data-layer='" + CSS.escape(layer) + "']"),
      function (el) { var m = modelOf(el); return (m === null || m === p.data.model) && el.closest("#run") === null; });
    var othersHidden = Array.prototype.every.call(others, function (el) {
      return el.hidden || el.closest("#run") !== null;
    });
    var ok = +layerIn.value === p.data.layers.length - 1 && othersHidden && mine.length > 0 &&
      mine.every(function (el) { return el.offsetParent !== null || el.closest("details:not([open])") !== null; });
    root.setAttribute("data-na-picker", ok ? "filtered" : "broken");
    modelSel.value = "";
    modelSel.dispatchEvent(new Event("change"));
    layerSel.value = "";
    layerSel.dispatchEvent(new Event("change"));
  }

  // a click on a misclassified sample rings it in its model's projection
  function galleryTest(projections) {
    var item = document.querySelector(".na-miss-item[data-index]");
    if (!item) { root.setAttribute("data-na-gallery", "none"); return; }
    item.click();
    var ringed = document.querySelectorAll(".na-proj .na-mark").length;
    root.setAttribute("data-na-gallery", ringed > 0 ? "linked" : "unlinked");
  }

  // the smallest figure text on the page, in pt at the size each figure is shown
  function minFontPt() {
    var least = Infinity;
    document.querySelectorAll("img[data-font-pt][data-width-in]").forEach(function (img) {
      if (!img.offsetWidth) { return; }
      var pt = +img.dataset.fontPt * (img.offsetWidth / 96) / +img.dataset.widthIn;
      if (pt < least) { least = pt; }
    });
    return least === Infinity ? "none" : least.toFixed(2);
  }

  function initGallery(projections) {
    document.addEventListener("click", function (e) {
      var item = e.target.closest && e.target.closest(".na-miss-item[data-index]");
      if (!item) { return; }
      var model = item.dataset.model, index = +item.dataset.index;
      projections.forEach(function (p) {
        if (p.data.model === model && p.mark(index) && e.isTrusted) {
          p.el.scrollIntoView({ block: "center" });
        }
      });
    });
  }

  /* ------------------------------------------------------------------ start */
  // anchors must land below the sticky header, whose height changes with the window
  function trackHeader() {
    var top = document.querySelector(".na-top");
    function set() { root.style.setProperty("--na-top-h", (top ? top.offsetHeight : 0) + "px"); }
    set();
    window.addEventListener("resize", set);
    // print everything: folded tables open, and charts redrawn at the paper's width
    window.addEventListener("beforeprint", function () {
      document.querySelectorAll("details:not([open])").forEach(function (d) { d.setAttribute("open", ""); d.dataset.naPrinted = "1"; });
    });
    window.addEventListener("afterprint", function () {
      document.querySelectorAll("details[data-na-printed]").forEach(function (d) { d.removeAttribute("open"); delete d.dataset.naPrinted; });
    });
  }

  // a link to a section (report.html#sec-naps) lands once, before the charts above it are
  // drawn: land again when they are, below the sticky header (scroll-margin-top in report.css)
  function landOnHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && id !== "na-selftest" ? document.getElementById(id) : null;
    if (target) { target.scrollIntoView({ block: "start" }); }
  }

  // self-test: follow the header's link to the last section as a reader would (a click on the
  // link) and check its heading is not under the sticky header: data-na-anchor="clear"
  function anchorTest() {
    var links = document.querySelectorAll(".na-nav a[href^='#']");
    var link = links[links.length - 1], top = document.querySelector(".na-top");
    if (!link || !top) { root.setAttribute("data-na-anchor", "no-nav"); return Promise.resolve(); }
    link.click();
    return new Promise(function (resolve) { requestAnimationFrame(function () { setTimeout(resolve, 50); }); })
      .then(function () {
        var heading = document.querySelector(link.getAttribute("href") + " h2");
        var h = heading.getBoundingClientRect(), bar = top.getBoundingClientRect();
        var covered = getComputedStyle(top).position === "sticky" ? bar.bottom : 0;
        root.setAttribute("data-na-anchor-gap", String(Math.round(h.top - covered)));
        root.setAttribute("data-na-anchor", h.top >= covered - 0.5 && h.top < window.innerHeight ? "clear" : "hidden");
      });
  }

  function start() {
    trackHeader();
    var drawn = drawPlots();
    var projections = [];
    document.querySelectorAll(".na-proj").forEach(function (el) { projections.push(Projection(el)); });
    initPicker(projections);
    initGallery(projections);
    document.addEventListener("click", function (e) {
      var fig = e.target.closest && e.target.closest(".na-fig");
      if (fig && e.target.tagName === "IMG") { fig.classList.toggle("na-zoom"); }
    });
    Promise.all(drawn.concat(projections.map(function (p) { return p.ready; })))
      .then(function () { landOnHash(); return selfTest(projections); })
      .then(function () { return location.hash === "#na-selftest" ? anchorTest() : null; })
      .then(function () {
        root.setAttribute("data-na-plots", String(charts.length));
        root.setAttribute("data-na-ready", "1");
      })
      .catch(function (err) { reportError(err && err.message ? err.message : err); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
