// sortie's launch page: draws the PageData embedded in #sortie-data (report.html) and, on the
// live dashboard, every fresh PageData the server sends on its /events stream.
// Every chart element carries data-points: the number of data points it drew (a canvas shows
// nothing in the DOM, so tests and people can check what was drawn).
(function () {
  'use strict';

  var COLORS = ['#1f77b4', '#2ca02c', '#d62728', '#7f7f7f', '#9467bd', '#8c564b', '#e377c2',
    '#17becf', '#bcbd22', '#ff7f0e'];
  var HEAT_HOSTS = 8; // more hosts than this: heat maps instead of one line per host
  var state = { sortKey: 'id', sortDir: 1, filter: '' };
  var charts = [];

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'text') e.textContent = attrs[k];
        else if (k === 'cls') e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var kid = arguments[i];
      if (kid === null || kid === undefined) continue;
      e.appendChild(typeof kid === 'string' ? document.createTextNode(kid) : kid);
    }
    return e;
  }

  function secs(ms) {
    if (ms === null || ms === undefined) return '';
    if (ms < 1000) return ms + ' ms';
    var s = ms / 1000;
    if (s < 120) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    var m = Math.floor(s / 60);
    if (m < 120) return m + 'm' + String(Math.round(s % 60)).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') + 'm';
  }

  function bytes(b) {
    if (b === null || b === undefined) return '';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(1)) + ' ' + u[i];
  }

  function num(v, digits) {
    return v === null || v === undefined ? '' : v.toFixed(digits);
  }

  function table(head, rows) {
    var t = el('table');
    var tr = el('tr');
    head.forEach(function (h) { tr.appendChild(el('th', { text: h })); });
    t.appendChild(el('thead', null, tr));
    var body = el('tbody');
    rows.forEach(function (r) {
      var row = el('tr');
      r.forEach(function (c) {
        row.appendChild(c instanceof Node ? el('td', null, c) : el('td', { text: String(c) }));
      });
      body.appendChild(row);
    });
    t.appendChild(body);
    return t;
  }

  // A line chart: x in seconds, one series per entry of `series` ({label, values}); its
  // data-points is the number of non-null values drawn.
  // `how`: {xlabel, stepped} (counts hold between changes: stepped lines).
  function lineChart(name, title, xs, series, yfmt, how) {
    how = how || {};
    var box = el('div', { cls: 'chart', 'data-chart': name });
    box.appendChild(el('h3', { text: title }));
    var points = 0;
    series.forEach(function (s) {
      s.values.forEach(function (v) { if (v !== null && v !== undefined) points++; });
    });
    box.setAttribute('data-points', String(points));
    var data = [xs].concat(series.map(function (s) { return s.values; }));
    var opts = {
      width: Math.max(320, Math.min(1100, (document.body.clientWidth || 900) - 40)),
      height: 220,
      scales: { x: { time: false } },
      legend: { live: false },
      series: [{ label: 's' }].concat(series.map(function (s, i) {
        var line = { label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5,
          points: { show: xs.length < 60 } };
        if (how.stepped && uPlot.paths.stepped) line.paths = uPlot.paths.stepped({ align: 1 });
        return line;
      })),
      axes: [{ label: how.xlabel || 'seconds into the run' }, { values: function (u, vals) { return vals.map(yfmt); }, size: 70 }]
    };
    box.appendChild(el('div', { cls: 'plot' }));
    charts.push(function () { return new uPlot(opts, data, box.lastChild); });
    return box;
  }

  // A heat map drawn on a canvas: one row per host, one cell per sample, colour by value in
  // 0..1. data-points is the number of cells drawn.
  function heatMap(name, title, hosts, valueOf) {
    var box = el('div', { cls: 'chart heat', 'data-chart': name });
    box.appendChild(el('h3', { text: title }));
    var width = Math.max(320, Math.min(1100, (document.body.clientWidth || 900) - 40));
    var label = 110;
    var rowH = Math.max(4, Math.min(18, Math.floor(600 / Math.max(1, hosts.length))));
    var canvas = el('canvas', { width: String(width), height: String(rowH * hosts.length + 20) });
    box.appendChild(canvas);
    var tmax = 1;
    hosts.forEach(function (h) { if (h.t.length) tmax = Math.max(tmax, h.t[h.t.length - 1]); });
    var ctx = canvas.getContext('2d');
    var plotW = width - label;
    var points = 0;
    ctx.font = Math.min(12, rowH) + 'px sans-serif';
    hosts.forEach(function (h, row) {
      var y = row * rowH;
      ctx.fillStyle = '#333';
      if (rowH >= 8) ctx.fillText(h.host, 2, y + rowH - 2);
      for (var i = 0; i < h.t.length; i++) {
        var v = valueOf(h, i);
        if (v === null || v === undefined || isNaN(v)) continue;
        var t0 = i > 0 ? h.t[i - 1] : Math.max(0, h.t[i] - 5000);
        var x0 = label + plotW * t0 / tmax;
        var x1 = label + plotW * h.t[i] / tmax;
        var c = Math.max(0, Math.min(1, v));
        ctx.fillStyle = 'hsl(' + Math.round(220 - 220 * c) + ',80%,' + Math.round(85 - 40 * c) + '%)';
        ctx.fillRect(x0, y, Math.max(1, x1 - x0), rowH - 1);
        points++;
      }
    });
    ctx.fillStyle = '#333';
    ctx.fillText('0 s', label, rowH * hosts.length + 14);
    ctx.fillText(secs(tmax), width - 60, rowH * hosts.length + 14);
    box.setAttribute('data-points', String(points));
    return box;
  }

  function header(d) {
    var r = d.report;
    var status = d.live && !r.finished ? 'live' : r.finished ? (r.interrupted ? 'interrupted' : 'finished') : 'did not finish';
    var verdict = r.thresholds_passed ? 'thresholds passed' : 'thresholds FAILED';
    var box = el('header', null,
      el('h1', { text: 'sortie launch: ' + r.plan }),
      el('p', { cls: 'meta', text: 'run ' + r.run_id + ' | started ' + r.started_at + ' | ' +
        secs(r.elapsed_ms) + ' | ' + status + ' | ' + r.processes.length + ' processes on ' +
        r.hosts.length + ' hosts' }),
      el('p', { id: 'verdict', cls: r.thresholds_passed ? 'pass' : 'fail', text: verdict }));
    if (r.aborted) {
      box.appendChild(el('p', { id: 'aborted', cls: 'fail',
        text: 'aborted at ' + secs(r.aborted.at_ms) + ': ' + r.aborted.reason }));
    }
    (r.steps || []).forEach(function (st) {
      box.appendChild(el('p', { cls: 'step', text: 'step load: held ' + st.held + ' ' + st.role +
        ', broke at ' + st.broke_at + ' (' + secs(st.at_ms) + '): ' + st.reason }));
    });
    if (r.thresholds.length) {
      box.appendChild(table(['threshold', 'role', 'min', 'max', 'window', 'value', 'verdict'],
        r.thresholds.map(function (t) {
          var verdict = t.passed ? 'pass' : 'FAIL';
          if (t.failure) verdict += ' at ' + secs(t.failed_at_ms) + ': ' + t.failure;
          return [t.metric, t.role || 'all', t.min === null ? '' : t.min, t.max === null ? '' : t.max,
            t.window_ms ? secs(t.window_ms) : 'whole run',
            t.value === null ? 'nothing measured' : num(t.value, 3), verdict];
        })));
    }
    return box;
  }

  function roles(d) {
    var t = rolesTable(d);
    t.id = 'roles';
    return t;
  }

  function rolesTable(d) {
    return table(['role', 'planned', 'ready', 'endings', 'restarts', 'ready p50', 'p90', 'p99',
      'max', 'CPU mean', 'CPU max', 'max RSS'], d.report.roles.map(function (r) {
      var p = r.time_to_ready || {};
      var res = r.resources || {};
      var endings = Object.keys(r.endings).map(function (k) { return k + ' ' + r.endings[k]; }).join(', ');
      return [r.role, r.planned, r.ready, endings, r.restarts, secs(p.p50), secs(p.p90),
        secs(p.p99), secs(p.max), num(res.cpu_mean_cores, 2), num(res.cpu_max_cores, 2),
        bytes(res.rss_max_bytes)];
    }));
  }

  function countCharts(d) {
    var box = el('section', null, el('h2', { text: 'Processes over time' }));
    d.counts.forEach(function (rc) {
      var role = rc[0], s = rc[1];
      var xs = s.t.map(function (t) { return t / 1000; });
      var series = [
        { label: 'starting', values: s.starting }, { label: 'ready', values: s.ready },
        { label: 'failed', values: s.failed }, { label: 'stopped', values: s.stopped }];
      var title = role + ': processes by state';
      if (s.target.some(function (v) { return v !== null; })) {
        // A load shape: the target against the live processes (starting + ready).
        series.unshift({ label: 'live', values: s.ready.map(function (v, i) { return v + s.starting[i]; }) });
        series.unshift({ label: 'target', values: s.target });
        title = role + ': live processes against the load shape\'s target, and by state';
      }
      box.appendChild(lineChart('counts-' + role, title, xs, series,
        function (v) { return String(v); }, { stepped: true }));
    });
    return box;
  }

  function readyCharts(d) {
    var box = el('section', null, el('h2', { text: 'Time to ready' }));
    d.report.roles.forEach(function (r) {
      var ttr = d.report.processes
        .filter(function (p) { return p.role === r.role && p.time_to_ready_ms !== null; })
        .map(function (p) { return p.time_to_ready_ms / 1000; })
        .sort(function (a, b) { return a - b; });
      if (!ttr.length) return;
      var pct = ttr.map(function (_, i) { return 100 * (i + 1) / ttr.length; });
      // x: percentile, y: time to ready (seconds): the distribution, read like a percentile table.
      box.appendChild(lineChart('ready-' + r.role, r.role + ': time to ready by percentile (p50 ' +
        secs(r.time_to_ready.p50) + ', p90 ' + secs(r.time_to_ready.p90) + ', p99 ' +
        secs(r.time_to_ready.p99) + ', max ' + secs(r.time_to_ready.max) + ')', pct,
        [{ label: 'time to ready (s)', values: ttr }], function (v) { return v + ' s'; },
        { xlabel: 'percentile of the ready processes' }));
    });
    return box;
  }

  function hostCharts(d) {
    var box = el('section', null, el('h2', { text: 'Hosts' }));
    if (!d.hosts.length) {
      box.appendChild(el('p', { text: 'No host samples (sample_interval off, or no host connected).' }));
      return box;
    }
    if (d.hosts.length > HEAT_HOSTS) {
      box.appendChild(heatMap('host-cpu', 'CPU busy (user + system), per host', d.hosts,
        function (h, i) { return h.cpu[i]; }));
      box.appendChild(heatMap('host-mem', 'Memory in use, per host', d.hosts,
        function (h, i) { return h.mem_total ? h.mem_used[i] / h.mem_total : null; }));
      var max = 1;
      d.hosts.forEach(function (h) { h.rx_rate.forEach(function (v, i) { max = Math.max(max, v + h.tx_rate[i]); }); });
      box.appendChild(heatMap('host-net', 'Network in + out, per host (scale: ' + bytes(max) + '/s)', d.hosts,
        function (h, i) { return (h.rx_rate[i] + h.tx_rate[i]) / max; }));
      return box;
    }
    // One x axis for all hosts: the union of their sample times, null where a host has none.
    var times = [];
    d.hosts.forEach(function (h) { times = times.concat(h.t); });
    times = Array.from(new Set(times)).sort(function (a, b) { return a - b; });
    var at = {};
    times.forEach(function (t, i) { at[t] = i; });
    function aligned(h, arr) {
      var out = times.map(function () { return null; });
      h.t.forEach(function (t, i) { out[at[t]] = arr[i]; });
      return out;
    }
    var xs = times.map(function (t) { return t / 1000; });
    box.appendChild(lineChart('host-cpu', 'CPU busy (user + system)', xs, d.hosts.map(function (h) {
      return { label: h.host, values: aligned(h, h.cpu.map(function (v) { return 100 * v; })) };
    }), function (v) { return v + '%'; }));
    box.appendChild(lineChart('host-mem', 'Memory in use', xs, d.hosts.map(function (h) {
      return { label: h.host, values: aligned(h, h.mem_used) };
    }), bytes));
    box.appendChild(lineChart('host-net', 'Network in + out (per second)', xs, d.hosts.map(function (h) {
      return { label: h.host, values: aligned(h, h.rx_rate.map(function (v, i) { return v + h.tx_rate[i]; })) };
    }), function (v) { return bytes(v) + '/s'; }));
    return box;
  }

  var COLUMNS = [
    ['role', 'role'], ['key', 'key'], ['host', 'host'], ['ttr', 'time to ready'],
    ['ending', 'ending'], ['cpu', 'CPU (cores, mean)'], ['rss', 'max RSS'],
    ['failure', 'first failure line'], ['log', 'log']];

  function rowsOf(d) {
    return d.report.processes.map(function (p) {
      var res = p.resources || {};
      return { id: p.id, role: p.role, key: p.key, host: p.host, ttr: p.time_to_ready_ms,
        ending: p.ending.kind, cpu: res.cpu_mean_cores === undefined ? null : res.cpu_mean_cores,
        rss: res.rss_max_bytes === undefined ? null : res.rss_max_bytes,
        failure: p.first_failure_line || '', log: d.log_links[p.id] || '' };
    });
  }

  function processTable(d) {
    var box = el('section', null, el('h2', { text: 'Processes' }));
    var filter = el('input', { id: 'filter', type: 'search', placeholder: 'filter (role, key, host, ending, text)' });
    filter.value = state.filter;
    var count = el('span', { cls: 'count' });
    box.appendChild(el('p', null, filter, ' ', count));
    var t = el('table', { id: 'processes' });
    var tr = el('tr');
    COLUMNS.forEach(function (c) {
      var th = el('th', { 'data-key': c[0], text: c[1] + (state.sortKey === c[0] ? (state.sortDir > 0 ? ' ▲' : ' ▼') : '') });
      th.addEventListener('click', function () {
        state.sortDir = state.sortKey === c[0] ? -state.sortDir : 1;
        state.sortKey = c[0];
        draw(current);
      });
      tr.appendChild(th);
    });
    t.appendChild(el('thead', null, tr));
    var body = el('tbody');
    t.appendChild(body);
    box.appendChild(t);
    var rows = rowsOf(d);
    function fill() {
      var q = state.filter.toLowerCase();
      var shown = rows.filter(function (r) {
        return !q || [r.role, r.key, r.host, r.ending, r.failure, r.id].join(' ').toLowerCase().indexOf(q) >= 0;
      });
      var k = state.sortKey;
      shown.sort(function (a, b) {
        var x = a[k], y = b[k];
        if (x === y) return a.id < b.id ? -1 : 1;
        if (x === null || x === '') return 1;
        if (y === null || y === '') return -1;
        return (x < y ? -1 : 1) * state.sortDir;
      });
      body.textContent = '';
      shown.forEach(function (r) {
        var link = r.log ? el('a', { href: r.log.split('/').map(encodeURIComponent).join('/'), text: 'log' }) : '';
        var row = el('tr', { 'data-id': r.id, cls: r.ending });
        [r.role, r.key, r.host, secs(r.ttr), r.ending, num(r.cpu, 2), bytes(r.rss), r.failure].forEach(function (c) {
          row.appendChild(el('td', { text: String(c) }));
        });
        row.appendChild(el('td', null, link));
        body.appendChild(row);
      });
      count.textContent = shown.length + ' of ' + rows.length + ' processes';
    }
    filter.addEventListener('input', function () { state.filter = filter.value; fill(); });
    fill();
    return box;
  }

  var current = null;

  function draw(d) {
    current = d;
    charts = [];
    var app = document.getElementById('app');
    var focus = document.activeElement && document.activeElement.id === 'filter';
    var root = el('div', null, header(d), el('section', null, el('h2', { text: 'Roles' }), roles(d)),
      countCharts(d), readyCharts(d), hostCharts(d), processTable(d));
    app.textContent = '';
    app.appendChild(root);
    charts.forEach(function (make) { make(); });
    if (focus) document.getElementById('filter').focus();
    document.body.setAttribute('data-rendered', String((Number(document.body.getAttribute('data-rendered')) || 0) + 1));
  }

  var data = JSON.parse(document.getElementById('sortie-data').textContent);
  draw(data);
  // Time from the start of navigation to the first drawing done (benchmarks read it).
  document.body.setAttribute('data-load-ms', String(Math.round(performance.now())));
  if (data.live && window.EventSource) {
    var es = new EventSource('events' + window.location.search);
    es.onmessage = function (e) {
      var d = JSON.parse(e.data);
      draw(d);
      // The run is over and its server goes away with it: stop following.
      if (d.report.finished) es.close();
    };
  }
})();
