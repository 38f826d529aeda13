// Plots of a fairness report with Plotly (served from the installed plotly package).
// The tables on the page carry the same numbers; the plots are an addition.
(function () {
  "use strict";
  var source = document.getElementById("fairness-figures");
  if (!source || !window.Plotly) { return; }
  var figures = JSON.parse(source.textContent);
  figures.forEach(function (f) {
    var el = document.getElementById(f.id);
    if (el) { window.Plotly.newPlot(el, f.data, f.layout, { displaylogo: false, responsive: true }); }
  });
}());
