// KPI charts: each .chart[data-chart] holds {title, axis, x: [unix seconds], y: [value or null]}.
// uPlot (static/vendor/uplot) draws it on a canvas; a null value is a gap, never a zero. The same
// values are in the table under each chart.
(function () {
  var charts = [];
  function draw(el) {
    var data = JSON.parse(el.dataset.chart);
    var width = Math.max(260, el.clientWidth || 320);
    var opts = {
      width: width,
      height: 200,
      scales: { x: { time: true }, y: { range: function (u, min, max) {
        if (min == null) return [0, 1];
        return [Math.min(0, min), max > 0 ? max * 1.1 : 1];
      } } },
      axes: [{}, { label: data.axis, size: 56 }],
      series: [
        {},
        { label: data.title, stroke: "#1f5fbf", fill: "rgba(31,95,191,0.12)", width: 2,
          spanGaps: false, points: { show: true, size: 5 } }
      ],
      legend: { show: false }
    };
    var chart = new uPlot(opts, [data.x, data.y], el);
    chart.root.setAttribute("aria-hidden", "true");  // the table below is the text alternative
    charts.push([chart, el]);
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (typeof uPlot === "undefined") return;
    document.querySelectorAll(".chart[data-chart]").forEach(draw);
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        charts.forEach(function (pair) {
          pair[0].setSize({ width: Math.max(260, pair[1].clientWidth), height: 200 });
        });
      }, 150);
    });
  });
})();
