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

  var PLOT_CONFIG = {
    displaylogo: false, responsive: true, scrollZoom: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d"]
  };

  function readJSON(el) { return JSON.parse(el.textContent); }

  function epochKey(e) { return e === null ? "final" : String(e); }

  /* ------------------------------------------------------------------ static plots */
  function drawPlots() {
    var drawn = [];
    document.querySelectorAll(".na-plot-wrap").forEach(function (wrap) {
      var spec = readJSON(wrap.querySelector(".na-plot-spec"));
      drawn.push(Plotly.newPlot(wrap.querySelector(".na-plot"), spec.data, spec.layout, PLOT_CONFIG));
    });
    return drawn;
  }

  /* ------------------------------------------------------------------ hover thumbnail */
  var hoverBox = document.getElementById("na-hover");

  function showHover(d, p, text, x, y) {
    var img = hoverBox.querySelector(".na-hover-img");
    if (d.sprite) {
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

  // the sentence (or token in context) of a text point: escaped, its newlines as plotly <br>
  function hoverText(d, p) {
    if (!d.texts || d.texts[p] === undefined || d.texts[p] === null) { return ""; }
    if (d.sprite) { return " · " + d.texts[p]; }  // the thumbnail box sets textContent: no markup
    var t = String(d.texts[p]).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    return "<br>" + t.replace(/\n/g, "<br>");
  }

  /* ------------------------------------------------------------------ projections */
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
        return Plotly.react(plot, [], { height: 520 }, PLOT_CONFIG);
      }
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
          hoverinfo: d.sprite ? "none" : "text", hovertemplate: d.sprite ? undefined : "%{text}<extra></extra>",
          marker: { color: g.color, symbol: sym, size: 7, opacity: 0.85 }
        };
      });
      var q = d.quality[k] || {};
      scoreOut.textContent = Object.keys(q).map(function (name) {
        return name.replace(/_/g, " ") + " " + (q[name] === null ? "–" : q[name].toFixed(3));
      }).join(" · ");
      var layout = {
        height: 520, margin: { l: 20, r: 10, t: 34, b: 20 }, hovermode: "closest",
        uirevision: cur.layer,  // zoom is kept while the epoch changes, reset for another layer
        xaxis: { zeroline: false, showticklabels: false },
        yaxis: { zeroline: false, showticklabels: false, scaleanchor: "x" },
        legend: { itemsizing: "constant" }
      };
      return Plotly.react(plot, traces, layout, PLOT_CONFIG);
    }

    function onHover(ev) {
      var pt = ev.points && ev.points[0];
      if (!pt) { return; }
      var x, y;
      if (ev.event && ev.event.clientX !== undefined) {
        x = ev.event.clientX; y = ev.event.clientY;
      } else {  // a programmatic hover (Plotly.Fx.hover) has no mouse event
        var r = plot.getBoundingClientRect();
        x = r.left + pt.xaxis._offset + pt.xaxis.d2p(pt.x);
        y = r.top + pt.yaxis._offset + pt.yaxis.d2p(pt.y);
      }
      if (d.sprite) { showHover(d, pt.customdata, pt.text, x, y); }
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

    var ready = render().then(function () {
      plot.on("plotly_hover", onHover);
      plot.on("plotly_unhover", hideHover);
    });

    return {
      el: el, data: d, plot: plot, ready: ready, render: render,
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
      document.querySelectorAll(".js-plotly-plot").forEach(function (div) {
        if (div.offsetParent !== null) { Plotly.Plots.resize(div); }
      });
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
    var p = projections[0];
    if (!p) { root.setAttribute("data-na-hover", "no-projection"); return Promise.resolve(); }
    // a real mouse move over the first point: the same path a reader's mouse takes
    var drag = p.plot.querySelector(".nsewdrag");
    var full = p.plot._fullLayout, r = drag.getBoundingClientRect();
    var x0 = p.plot.data[0].x[0], y0 = p.plot.data[0].y[0];
    drag.dispatchEvent(new MouseEvent("mousemove", {
      bubbles: true, cancelable: true, view: window,
      clientX: r.left + full.xaxis.d2p(x0), clientY: r.top + full.yaxis.d2p(y0)
    }));
    return new Promise(function (resolve) { setTimeout(resolve, 200); }).then(function () {
      var img = hoverBox.querySelector(".na-hover-img");
      var state = hoverBox.hidden ? "none" : (!img.hidden && img.style.backgroundImage.indexOf("data:image/png") >= 0 ? "image" : "text");
      root.setAttribute("data-na-hover", p.data.sprite ? state : "no-sprite");
      var layerIn = p.el.querySelector(".na-proj-layer");
      if (!layerIn || layerIn.disabled) { root.setAttribute("data-na-slider", "single-layer"); return null; }
      var before = p.plot.data[0].x[0];
      layerIn.value = "0";
      return p.render().then(function () {
        root.setAttribute("data-na-slider", p.plot.data[0].x[0] !== before ? "moved" : "same");
        pickerTest(p);
      });
    });
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
    var mine = document.querySelectorAll("main [data-layer='" + CSS.escape(layer) + "']");
    var othersHidden = Array.prototype.every.call(others, function (el) {
      return el.hidden || el.closest("#run") !== null;
    });
    var ok = +layerIn.value === p.data.layers.length - 1 && othersHidden && mine.length > 0 &&
      Array.prototype.every.call(mine, function (el) { return !el.hidden; });
    root.setAttribute("data-na-picker", ok ? "filtered" : "broken");
    layerSel.value = "";
    layerSel.dispatchEvent(new Event("change"));
  }

  /* ------------------------------------------------------------------ start */
  function start() {
    if (typeof Plotly === "undefined") { reportError("plotly.js did not load"); return; }
    var drawn = drawPlots();
    var projections = [];
    document.querySelectorAll(".na-proj").forEach(function (el) { projections.push(Projection(el)); });
    initPicker(projections);
    document.addEventListener("click", function (e) {
      var fig = e.target.closest && e.target.closest(".na-fig");
      if (fig && e.target.tagName === "IMG") { fig.classList.toggle("na-zoom"); }
    });
    Promise.all(drawn.concat(projections.map(function (p) { return p.ready; })))
      .then(function () { return selfTest(projections); })
      .then(function () {
        root.setAttribute("data-na-plots", String(document.querySelectorAll(".js-plotly-plot").length));
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
