"""The HTML of a `gage report` page: markup, style and the script that
draws the data with plotly.js (both embedded; the page needs no
network)."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["page"]


def page(data: dict[str, Any], plotly_js: str) -> str:
    """The whole page for `run_report.report_data` output."""
    title = html.escape(data["title"])
    payload = _script_json(data)
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{title}</title>\n<style>{_CSS}</style>\n"
        f"<script>{_script_text(plotly_js)}</script>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        f"<p class='meta'>{len(data['runs'])} runs &middot; written "
        f"{html.escape(data['generated'])} by gage</p>\n"
        "<h2>Runs</h2>\n<p class='hint'>Click a column to sort.</p>\n"
        "<div class='scroll'><table id='runs'><thead></thead><tbody></tbody>"
        "</table></div>\n"
        "<h2>Curves</h2>\n<div id='curves'></div>\n"
        "<h2 id='parcoords-title'>Config and metric</h2>\n"
        "<div id='parcoords' class='chart'></div>\n"
        "<h2>Config against the first run</h2>\n"
        "<table id='diffs'><thead><tr><th>run</th><th>config changes</th></tr>"
        "</thead><tbody></tbody></table>\n"
        f"<script id='report-data' type='application/json'>{payload}</script>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


def _script_json(data: Any) -> str:
    # Inside <script>, '</' could end the element: escape it.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("</", "<\\/")


def _script_text(js: str) -> str:
    return js.replace("</script", "<\\/script")


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta, .hint, .empty { color: #666; margin: 2px 0 8px; }
.scroll { max-height: 420px; overflow: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; }
th, td { padding: 3px 8px; text-align: left; border-bottom: 1px solid #eee;
  white-space: nowrap; }
#runs th { position: sticky; top: 0; background: #f4f4f4; cursor: pointer; }
#runs th.asc::after { content: " \\25B2"; }
#runs th.desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.st-completed { color: #1a7f37; } .st-error, .st-abandoned { color: #cf222e; }
.st-terminated { color: #9a6700; } .st-running { color: #0969da; }
.chart { width: 100%; max-width: 1100px; height: 380px; }
#curves { display: flex; flex-wrap: wrap; gap: 8px; }
#curves .chart { flex: 1 1 540px; max-width: 1100px; height: 360px; }
del { color: #cf222e; } ins { color: #1a7f37; text-decoration: none; }
"""

_JS = r"""
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var runs = data.runs;
  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v)
      : String(Number(v.toPrecision(6)));
    return typeof v === 'string' ? v : JSON.stringify(v);
  }
  function cell(tag, text, cls) {
    var el = document.createElement(tag);
    el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }
  // Runs table
  var cols = [['name', function (r) { return r.name; }],
    ['op', function (r) { return r.op; }],
    ['status', function (r) { return r.status; }],
    ['started', function (r) { return (r.started || '').replace('T', ' ').slice(0, 19); }],
    ['batch', function (r) { return r.batch ? r.batch.slice(0, 8) : null; }]];
  data.columns.config.forEach(function (k) {
    cols.push([k, function (r) { return r.config[k]; }]);
  });
  data.columns.metrics.forEach(function (k) {
    cols.push([k, function (r) { return r.metrics[k]; }]);
  });
  var thead = document.querySelector('#runs thead');
  var tbody = document.querySelector('#runs tbody');
  var head = document.createElement('tr');
  cols.forEach(function (c, i) {
    var th = cell('th', c[0]);
    th.addEventListener('click', function () { sortBy(i, th); });
    head.appendChild(th);
  });
  thead.appendChild(head);
  var rows = runs.map(function (r) {
    var tr = document.createElement('tr');
    tr.dataset.run = r.id;
    var vals = cols.map(function (c) { return c[1](r); });
    vals.forEach(function (v, i) {
      var cls = typeof v === 'number' ? 'num' : (i === 2 ? 'st-' + v : '');
      tr.appendChild(cell('td', fmt(v), cls));
    });
    return {tr: tr, vals: vals};
  });
  rows.forEach(function (row) { tbody.appendChild(row.tr); });
  var sorted = {col: -1, desc: false};
  function sortBy(i, th) {
    var desc = sorted.col === i ? !sorted.desc : false;
    sorted = {col: i, desc: desc};
    rows.sort(function (a, b) {
      var x = a.vals[i], y = b.vals[i];
      var xm = x === null || x === undefined, ym = y === null || y === undefined;
      if (xm || ym) return xm === ym ? 0 : (xm ? 1 : -1);
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y
        : String(fmt(x)).localeCompare(String(fmt(y)));
      return desc ? -c : c;
    });
    rows.forEach(function (row) { tbody.appendChild(row.tr); });
    thead.querySelectorAll('th').forEach(function (h) { h.className = ''; });
    th.className = desc ? 'desc' : 'asc';
  }
  var config = {displaylogo: false, responsive: true};
  // Curves: a chart per scalar key, a line per run.
  var curves = document.getElementById('curves');
  var keys = Object.keys(data.curves);
  if (!keys.length) curves.appendChild(cell('p', 'No run has scalars.', 'empty'));
  keys.forEach(function (key, n) {
    var div = document.createElement('div');
    div.className = 'chart';
    div.id = 'curve-' + n;
    curves.appendChild(div);
    var series = data.curves[key];
    var traces;
    if (series.length < 40) {
      traces = series.map(function (s) {
        return {type: 'scatter', mode: s.x.length > 1 ? 'lines' : 'markers',
          name: s.run, x: s.x, y: s.y};
      });
    } else {
      // Many runs: one trace, runs apart by a gap, the run on hover.
      var x = [], y = [], text = [];
      series.forEach(function (s) {
        for (var i = 0; i < s.x.length; i++) {
          x.push(s.x[i]); y.push(s.y[i]); text.push(s.run);
        }
        x.push(null); y.push(null); text.push('');
      });
      traces = [{type: 'scatter', mode: 'lines', x: x, y: y, text: text,
        hovertemplate: '%{text}<br>step %{x}: %{y}<extra></extra>',
        line: {width: 1, color: 'rgba(31,119,180,0.35)'}, name: key}];
    }
    Plotly.newPlot(div, traces, {
      title: {text: key}, margin: {l: 50, r: 10, t: 40, b: 40},
      xaxis: {title: {text: 'step'}}, showlegend: series.length < 40 && series.length > 1,
      legend: {font: {size: 10}},
      updatemenus: [{type: 'buttons', direction: 'right', x: 0, xanchor: 'left',
        y: 1.12, yanchor: 'bottom', showactive: true, font: {size: 10},
        buttons: [{label: 'linear', method: 'relayout', args: ['yaxis.type', 'linear']},
                  {label: 'log', method: 'relayout', args: ['yaxis.type', 'log']}]}]
    }, config);
  });
  // Parallel coordinates of config against the metric: an axis per
  // config key that varies, then the metric; a line per run, colored by
  // the metric (drawn as SVG lines, one trace per color band, so a
  // thousand runs draw fast and no WebGL is needed).
  var pc = document.getElementById('parcoords');
  if (data.parcoords) {
    document.getElementById('parcoords-title').textContent =
      'Config and ' + data.metric;
    drawParallel(pc, data.parcoords, data.metric, config);
  } else {
    pc.className = '';
    pc.appendChild(cell('p', 'Fewer than two runs have a metric to plot.', 'empty'));
  }
  // Config diffs against the first run.
  var dbody = document.querySelector('#diffs tbody');
  data.diffs.forEach(function (d, i) {
    var tr = document.createElement('tr');
    tr.appendChild(cell('td', d.run));
    var td = document.createElement('td');
    if (i === 0) td.textContent = '(first run)';
    else if (!d.changes.length) td.textContent = 'same config';
    d.changes.forEach(function (c, j) {
      if (j) td.appendChild(document.createTextNode(', '));
      td.appendChild(document.createTextNode(c.key + ': '));
      td.appendChild(cell('del', fmt(c.from)));
      td.appendChild(document.createTextNode(' \u2192 '));
      td.appendChild(cell('ins', fmt(c.to)));
    });
    tr.appendChild(td);
    dbody.appendChild(tr);
  });
  document.body.dataset.ready = '1';

  function drawParallel(el, p, metric, config) {
    var dims = p.dimensions, n = p.runs.length, BANDS = 8;
    var scales = dims.map(function (d) {
      var lo = Math.min.apply(null, d.values), hi = Math.max.apply(null, d.values);
      return {lo: lo, hi: hi, span: (hi - lo) || 1};
    });
    var cmin = Math.min.apply(null, p.color), cmax = Math.max.apply(null, p.color);
    var bands = [];
    for (var b = 0; b < BANDS; b++) bands.push({x: [], y: [], text: []});
    for (var i = 0; i < n; i++) {
      var c = (p.color[i] - cmin) / ((cmax - cmin) || 1);
      var band = bands[Math.min(BANDS - 1, Math.floor(c * BANDS))];
      dims.forEach(function (d, j) {
        band.x.push(j);
        band.y.push((d.values[i] - scales[j].lo) / scales[j].span);
        band.text.push(p.runs[i] + '<br>' + d.label + ': ' + fmt(axisText(d, d.values[i])));
      });
      band.x.push(null); band.y.push(null); band.text.push('');
    }
    var traces = bands.map(function (band, b) {
      return {type: 'scatter', mode: 'lines', x: band.x, y: band.y, text: band.text,
        hovertemplate: '%{text}<extra></extra>', showlegend: false,
        line: {width: 1.2, color: viridis((b + 0.5) / BANDS)}, opacity: 0.6};
    });
    var last = dims.length - 1;
    traces.push({type: 'scatter', mode: 'markers', x: p.color.map(function () { return last; }),
      y: p.color.map(function (v) { return (v - scales[last].lo) / scales[last].span; }),
      text: p.runs, hovertemplate: '%{text}<extra></extra>', showlegend: false,
      marker: {size: 6, color: p.color, colorscale: 'Viridis', showscale: true,
        colorbar: {title: {text: metric}}}});
    var notes = [];
    dims.forEach(function (d, j) {
      var ticks = d.tickvals ? d.tickvals.map(function (v, k) { return [v, d.ticktext[k]]; })
        : [[scales[j].lo, scales[j].lo], [scales[j].hi, scales[j].hi]];
      ticks.forEach(function (t) {
        notes.push({x: j, y: (t[0] - scales[j].lo) / scales[j].span, xanchor: 'right',
          text: fmt(t[1]), showarrow: false, font: {size: 10, color: '#555'}, xshift: -4});
      });
    });
    Plotly.newPlot(el, traces, {
      margin: {l: 70, r: 30, t: 20, b: 40}, annotations: notes, hovermode: 'closest',
      xaxis: {tickvals: dims.map(function (d, j) { return j; }),
        ticktext: dims.map(function (d) { return d.label; }), showgrid: true,
        gridcolor: '#999', zeroline: false, range: [-0.3, last + 0.15]},
      yaxis: {visible: false, range: [-0.06, 1.06]}
    }, config);
  }
  function axisText(d, v) {
    return d.ticktext ? d.ticktext[v] : v;
  }
  function viridis(t) {
    var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    var x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    var c = stops[i].map(function (a, k) { return Math.round(a + (stops[i + 1][k] - a) * f); });
    return 'rgb(' + c.join(',') + ')';
  }
})();
"""
