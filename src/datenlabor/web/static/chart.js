// Quick chart of an SQL result with Plotly (served from the installed plotly package).
// The chart is an addition: the full result table is always on the page, and the charted
// values are offered as a table of their own.
(function () {
  "use strict";
  var section = document.querySelector("[data-chart]");
  var source = document.getElementById("chart-data");
  if (!section || !source || !window.Plotly) { return; }
  var labels = JSON.parse(document.currentScript.getAttribute("data-labels") || "{}");
  var german = document.documentElement.lang === "de";
  var locale = german ? "de-DE" : "en-GB";
  var data = JSON.parse(source.textContent);
  var byName = {};
  data.columns.forEach(function (c) { byName[c.name] = c; });
  var form = document.getElementById("chart-form");
  var target = document.getElementById("chart");
  var tableBox = document.getElementById("chart-table");
  section.hidden = false;

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) { return values[k] || ""; });
  }

  function table(xName, yName, xs, ys) {
    var t = document.createElement("table");
    var cap = t.createCaption();
    cap.textContent = fill(labels.described, { x: xName, y: yName });
    var head = t.createTHead().insertRow();
    [xName, yName].forEach(function (name) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      head.appendChild(th);
    });
    var body = t.createTBody();
    for (var i = 0; i < xs.length; i++) {
      var row = body.insertRow();
      row.insertCell().textContent = xs[i] === null ? "" : String(xs[i]);
      var cell = row.insertCell();
      cell.className = "num";
      cell.textContent = ys[i] === null ? "" : Number(ys[i]).toLocaleString(locale);
    }
    tableBox.textContent = "";
    tableBox.appendChild(t);
  }

  function draw() {
    var xName = form.elements.x.value;
    var yName = form.elements.y.value;
    var kind = form.elements.kind.value;
    if (!byName[xName] || !byName[yName]) { return; }
    var xs = byName[xName].values;
    var ys = byName[yName].values;
    var trace = kind === "line"
      ? { type: "scatter", mode: "lines+markers", x: xs, y: ys, line: { color: "#0b4f8a" } }
      : { type: "bar", x: xs, y: ys, marker: { color: "#0b4f8a" } };
    var layout = {
      margin: { t: 30, r: 20, b: 80, l: 70 },
      xaxis: { title: { text: xName }, automargin: true, type: byName[xName].numeric ? "linear" : "category" },
      yaxis: { title: { text: yName }, automargin: true, exponentformat: "none", separatethousands: true },
      separators: german ? ",." : ".,",
      font: { family: "system-ui, sans-serif", size: 14, color: "#1b1f24" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff"
    };
    window.Plotly.react(target, [trace], layout, { displayModeBar: false, responsive: true, displaylogo: false });
    target.setAttribute("aria-label", fill(labels.described, { x: xName, y: yName }));
    table(xName, yName, xs, ys);
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); draw(); });
  draw();
})();
