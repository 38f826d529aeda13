// Dashboard charts with Plotly (served from the installed plotly package). Every chart's
// numbers are also in the tile's data table, rendered on the server, so the page is complete
// without this script. Here: draw the charts, open the cases behind a clicked bar or point,
// and save a tile as PNG (Plotly's toImage for charts, the SVG drawn on a canvas for maps).
(function () {
  "use strict";
  if (!window.Plotly) { return; }
  var script = document.currentScript;
  var labels = JSON.parse(script.getAttribute("data-labels") || "{}");
  var still = script.getAttribute("data-static") === "1";
  var german = document.documentElement.lang === "de";
  var colours = ["#0b4f8a", "#c2410c", "#2f7d32", "#6b3fa0", "#8a6d00"];
  var dashes = ["solid", "dash", "dot", "dashdot", "longdash"];
  var symbols = ["circle", "square", "diamond", "triangle-up", "cross"];

  function scaled(value, kind) {
    if (value === null || value === undefined) { return null; }
    if (kind === "duration_s") { return value / 86400; }
    if (kind === "rate") { return value * 100; }
    return value;
  }

  function axisTitle(label, kind) {
    if (kind === "duration_s") { return label + " (" + labels.days + ")"; }
    if (kind === "rate") { return label + " (%)"; }
    return label;
  }

  function draw(box) {
    var source = document.getElementById(box.id + "-data");
    if (!source) { return; }
    var c = JSON.parse(source.textContent);
    var xs = c.rows.map(function (r) {
      var v = r[c.x];
      if (c.kinds[c.x] === "duration_s") { v = scaled(v, "duration_s"); }
      return Array.isArray(v) ? v.join(" → ") : v;
    });
    var traces = c.y.map(function (name, i) {
      var kind = c.kinds[name];
      var ys = c.rows.map(function (r) { return scaled(r[name], kind); });
      var t = { name: c.yLabels[i], x: xs, y: ys, hovertemplate: "%{x}: %{y:,.1f}<extra>" + c.yLabels[i] + "</extra>" };
      var colour = colours[i % colours.length];
      if (c.type === "bar" || c.type === "histogram") {
        t.type = "bar";
        t.marker = { color: colour, pattern: { shape: ["", "/", ".", "x", "\\"][i % 5] } };
      } else {
        t.type = "scatter";
        t.mode = "lines+markers";
        t.line = { color: colour, dash: dashes[i % dashes.length] };
        t.marker = { symbol: symbols[i % symbols.length], size: 7 };
        if (c.type === "area") { t.fill = i === 0 ? "tozeroy" : "tonexty"; t.stackgroup = "one"; }
      }
      return t;
    });
    var xKind = c.kinds[c.x];
    var layout = {
      margin: { t: 10, r: 10, b: 60, l: 70 },
      showlegend: c.y.length > 1,
      legend: { orientation: "h", y: -0.25 },
      bargap: c.type === "histogram" ? 0.02 : 0.2,
      xaxis: { title: { text: axisTitle(c.xLabel, xKind) }, automargin: true,
               type: (xKind === "text" || xKind === "list" || xKind === "int" && c.type !== "histogram") ? "category" : undefined },
      yaxis: { title: { text: axisTitle(c.yLabels[0] || "", c.kinds[c.y[0]]) }, automargin: true,
               exponentformat: "none", separatethousands: true, rangemode: "tozero" },
      separators: german ? ",." : ".,",
      font: { family: "system-ui, sans-serif", size: 13, color: "#1b1f24" },
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff"
    };
    var config = { displayModeBar: false, responsive: !still, staticPlot: still, displaylogo: false };
    return window.Plotly.newPlot(box, traces, layout, config).then(function () {
      if (still) { return; }
      box.on("plotly_click", function (ev) {
        var point = ev && ev.points && ev.points[0];
        var href = point && c.hrefs[point.pointIndex];
        if (href) { window.location.assign(href); }
      });
    });
  }

  function download(name, url) {
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  // PNGs go through an SVG data URL drawn on a canvas: the page's CSP allows data: images
  // but not blob: ones (which Plotly's own PNG export would use).
  function rasterise(url, width, height, name) {
    var img = new Image();
    img.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      var ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, width, height);
      ctx.drawImage(img, 0, 0, width, height);
      download(name, canvas.toDataURL("image/png"));
    };
    img.onerror = function () { window.alert(labels.png_failed); };
    img.src = url;
  }

  function svgToPng(svg, name) {
    var copy = svg.cloneNode(true);
    var box = svg.viewBox.baseVal;
    copy.setAttribute("width", box.width);
    copy.setAttribute("height", box.height);
    var text = new XMLSerializer().serializeToString(copy);
    rasterise("data:image/svg+xml;charset=utf-8," + encodeURIComponent(text),
              box.width * 2, box.height * 2, name);
  }

  function png(id) {
    var name = "kachel-" + id + ".png";
    var chart = document.getElementById("chart-" + id);
    if (chart) {
      var w = chart.offsetWidth || 700;
      var h = chart.offsetHeight || 400;
      window.Plotly.toImage(chart, { format: "svg", width: w, height: h }).then(function (url) {
        rasterise(url, w * 2, h * 2, name);
      });
      return;
    }
    var svg = document.getElementById("svg-" + id);
    if (svg) { svgToPng(svg, name); }
  }

  Array.prototype.forEach.call(document.querySelectorAll(".tile .chart"), draw);
  Array.prototype.forEach.call(document.querySelectorAll("[data-png]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { png(button.getAttribute("data-png")); });
  });
})();
