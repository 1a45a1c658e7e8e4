// Draws every <div class="chart" data-series="ID"> from the JSON in <script type="application/json" id="ID">:
// {"title", "x": [epoch seconds], "range": [first, last] (epoch seconds, optional), "series": [{"label", "values"}]}.
// No network: the page carries its data.
"use strict";

const COLORS = ["#3b7dd8", "#d9534f", "#5cb85c", "#f0ad4e"];
const compact = (u, values) => values.map((v) => (v == null ? "" : +v.toPrecision(3)));

function drawCharts() {
  for (const box of document.querySelectorAll("div.chart[data-series]")) {
    const spec = JSON.parse(document.getElementById(box.dataset.series).textContent);
    const options = {
      title: spec.title, width: Math.max(box.clientWidth - 16, 300), height: 220,
      scales: spec.range ? {x: {time: true, auto: false, range: spec.range}} : {},
      axes: [{}, {values: compact, size: 64}],
      series: [{}, ...spec.series.map((s, i) => ({label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
                                                   points: {show: true}}))],
    };
    box.dataset.points = String(spec.x.length);
    new uPlot(options, [spec.x, ...spec.series.map((s) => s.values)], box);
  }
}

document.addEventListener("DOMContentLoaded", drawCharts);
