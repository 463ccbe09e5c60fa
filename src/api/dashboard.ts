/**
 * GET /dashboard: one self-contained page (no build step, no external assets) that polls /health and /status
 * every two seconds and shows what runs where: each GPU's memory split into the proxy's instances (their measured
 * footprint, else their estimate), other processes and free room; and each instance's placement, memory and load.
 * In a cluster (/health has `cluster`) a Nodes section comes first: each node up or down (its error, when it was
 * last heard from), its GPUs' memory and the models on each GPU or on its CPU. Peers report per GPU only what is
 * used and free, so a node's used memory is drawn in the colours of the instances on that GPU, not split by them.
 * Every string is put in the page as text (DOM nodes, never HTML): names and errors come from other machines.
 * The page holds no data itself, so it stays open when API keys are set; it asks for a key when /status answers
 * 401 and keeps it in the browser's localStorage.
 */
import type { ProxyApp } from './types.js';

export const DASHBOARD_PATH = '/dashboard';

const PAGE = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llama-smart-proxy</title>
<style>
  :root { --bg: #0f1115; --card: #181b22; --text: #e6e6e6; --dim: #9aa0aa; --line: #2a2f3a; --free: #23272f; --other: #5c6370; --bad: #e06c75; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  header { padding: 12px 20px; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0 8px 0 0; }
  header span { color: var(--dim); }
  header b { color: var(--text); font-weight: 600; }
  main { padding: 16px 20px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--dim); margin: 18px 0 8px; }
  .gpus { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
  .gpu { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
  .gpu .name { font-weight: 600; }
  .gpu .facts { color: var(--dim); font-size: 12px; margin-top: 6px; }
  .bar { display: flex; height: 18px; border-radius: 4px; overflow: hidden; background: var(--free); margin-top: 8px; }
  .bar div { height: 100%; min-width: 1px; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; margin-top: 6px; color: var(--dim); }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--dim); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr:last-child td { border-bottom: 0; }
  .state-ready { color: #98c379; } .state-starting { color: #e5c07b; } .state-stopping { color: var(--dim); }
  .empty { color: var(--dim); padding: 10px 0; }
  #error { display: none; background: #3a1d22; color: #f4c7cc; border: 1px solid var(--bad); border-radius: 6px; padding: 8px 12px; margin-bottom: 12px; }
  #keyform { display: none; margin-bottom: 12px; }
  .node { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; min-width: 0; }
  .node.local { border-color: #3b4a63; }
  .node.down { border-color: var(--bad); }
  .node.down .known { opacity: .55; }
  .nhead { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 8px; }
  .nhead .name { font-weight: 600; overflow-wrap: anywhere; }
  .nhead .seen { margin-left: auto; color: var(--dim); font-size: 12px; }
  .tag { font-size: 11px; color: #61afef; border: 1px solid #3b4a63; border-radius: 9px; padding: 0 6px; }
  .pill { font-size: 12px; font-weight: 600; } .pill.up { color: #98c379; } .pill.down { color: var(--bad); }
  .node .facts { color: var(--dim); font-size: 12px; margin-top: 2px; }
  .node .facts, .node .legend span, .gname b { overflow-wrap: anywhere; min-width: 0; }
  .node .err { margin-top: 6px; padding: 4px 8px; border-radius: 4px; background: #3a1d22; color: #f4c7cc; font-size: 12px; overflow-wrap: anywhere; }
  .ngpu, .ncpu { margin-top: 10px; }
  .ngpu .gname, .ncpu .gname { display: flex; justify-content: space-between; gap: 8px; font-size: 13px; }
  .gname b { font-weight: 400; }
  .gname span { color: var(--dim); font-size: 12px; white-space: nowrap; }
  input { background: var(--card); color: var(--text); border: 1px solid var(--line); border-radius: 4px; padding: 5px 8px; }
</style>
</head>
<body>
<header>
  <h1>llama-smart-proxy</h1>
  <span id="nodewrap" hidden>node <b id="node">-</b></span>
  <span>version <b id="version">-</b></span>
  <span>up <b id="uptime">-</b></span>
  <span>GPU source <b id="source">-</b></span>
  <span>strategy <b id="strategy">-</b></span>
  <span>instances <b id="pool">-</b></span>
  <span>queued <b id="queued">-</b></span>
  <span>updated <b id="updated">never</b></span>
</header>
<main>
  <div id="error"></div>
  <form id="keyform"><label>API key <input id="key" type="password" autocomplete="off"></label> <button>use</button></form>
  <section id="nodes-section" hidden>
    <h2>Nodes</h2>
    <div id="nodes" class="gpus"></div>
  </section>
  <h2 id="gpus-title">GPUs</h2>
  <div id="gpus" class="gpus"></div>
  <h2 id="instances-title">Instances</h2>
  <div id="instances"></div>
</main>
<script>
(() => {
  const COLORS = ['#61afef', '#c678dd', '#98c379', '#e5c07b', '#56b6c2', '#d19a66', '#be5046', '#7ec7a2'];
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'style') Object.assign(e.style, v);
      else if (k === 'className') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
    return e;
  };
  const mib = (v) => (v == null ? '-' : v >= 10240 ? (v / 1024).toFixed(1) + ' GiB' : Math.round(v) + ' MiB');
  const dur = (s) => (s == null ? '-' : s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : (s / 3600).toFixed(1) + ' h');
  const colorOf = new Map();
  const color = (id) => { if (!colorOf.has(id)) colorOf.set(id, COLORS[colorOf.size % COLORS.length]); return colorOf.get(id); };
  const headers = () => { const k = localStorage.getItem('lsp-key'); return k ? { authorization: 'Bearer ' + k } : {}; };

  $('keyform').addEventListener('submit', (e) => { e.preventDefault(); localStorage.setItem('lsp-key', $('key').value); $('keyform').style.display = 'none'; tick(); });

  function renderHeader(h) {
    $('version').textContent = h.version;
    $('uptime').textContent = dur(h.uptime_s);
    $('source').textContent = h.gpu_pool_status ? h.gpu_pool_status.source : 'none (CPU)';
    $('strategy').textContent = h.allocation_strategy;
    $('pool').textContent = h.pool.running + ' / ' + h.pool.capacity;
    $('queued').textContent = h.pool.queued;
  }

  function renderGpus(h, status) {
    const perGpu = new Map((status ? status.instances : []).map((i) => [i.id, i]));
    const box = $('gpus');
    box.replaceChildren();
    const g = h.gpu_pool_status;
    if (!g || g.gpus.length === 0) { box.append(el('div', { className: 'empty' }, 'No GPU: models run on the CPU.')); return; }
    for (const d of g.gpus) {
      const ours = h.servers.filter((s) => s.gpu_assignment && s.gpu_assignment.gpu_ids.includes(d.id));
      const bar = el('div', { className: 'bar' });
      const legend = el('div', { className: 'legend' });
      let oursMib = 0;
      for (const s of ours) {
        // what it holds on this GPU: /status has it per GPU (measured, else estimated); /health only the sum
        const st = perGpu.get(s.id);
        const key = String(d.id);
        const measured = st && st.footprint_mib ? st.footprint_mib.gpus[key] : undefined;
        const estimated = st && st.estimate_mib ? st.estimate_mib.gpus[key] : undefined;
        const share = 1 / s.gpu_assignment.gpu_ids.length;
        const used = measured != null ? measured : estimated != null ? estimated : (s.actual_vram_mib != null ? s.actual_vram_mib : s.estimated_vram_mib || 0) * share;
        oursMib += used;
        const label = s.model_id + ' ' + mib(used) + (measured != null || (st == null && s.actual_vram_mib != null) ? '' : ' (estimate)');
        bar.append(el('div', { title: label, 'data-instance': s.id, style: { width: (100 * used / d.total_memory_mib) + '%', background: color(s.id) } }));
        legend.append(el('span', {}, el('i', { style: { background: color(s.id) } }), label));
      }
      const other = Math.max(0, d.used_memory_mib - oursMib);
      if (other > 0) {
        bar.append(el('div', { title: 'other ' + mib(other), style: { width: (100 * other / d.total_memory_mib) + '%', background: 'var(--other)' } }));
        legend.append(el('span', {}, el('i', { style: { background: 'var(--other)' } }), 'other ' + mib(other)));
      }
      legend.append(el('span', {}, el('i', { style: { background: 'var(--free)' } }), 'free ' + mib(d.free_memory_mib)));
      const facts = [
        mib(d.used_memory_mib) + ' used of ' + mib(d.total_memory_mib),
        d.utilization_gpu_percent != null ? d.utilization_gpu_percent + ' % busy' : null,
        d.temperature_c != null ? d.temperature_c + ' °C' : null,
        d.power_w != null ? Math.round(d.power_w) + ' W' : null,
        d.runtime_overhead_mib != null ? 'CUDA runtime ' + mib(d.runtime_overhead_mib) : null,
      ].filter(Boolean).join(' · ');
      box.append(el('div', { className: 'gpu', 'data-gpu': d.id }, el('div', { className: 'name' }, 'GPU ' + d.id + ' · ' + d.name), bar, legend, el('div', { className: 'facts' }, facts)));
    }
  }

  function renderInstances(h, status) {
    const box = $('instances');
    box.replaceChildren();
    if (h.servers.length === 0) { box.append(el('div', { className: 'empty' }, 'No instance running; one starts with the first request for a model.')); return; }
    const load = new Map((status ? status.instances : []).map((i) => [i.id, i.load]));
    const cols = ['model', 'state', 'placement', 'VRAM est.', 'VRAM actual', 'host est.', 'in flight', 'tok/s', 'slots busy', 'up', 'idle / ttl'];
    const num = new Set(['VRAM est.', 'VRAM actual', 'host est.', 'in flight', 'tok/s', 'slots busy']);
    const table = el('table', {}, el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', num.has(c) ? { className: 'num' } : {}, c)))));
    const body = el('tbody');
    for (const s of h.servers) {
      const a = s.gpu_assignment;
      const placement = !a || a.gpu_ids.length === 0 ? 'CPU' : 'GPU ' + a.gpu_ids.join('+') + (a.split_mode === 'layer' ? ' split ' + (a.tensor_split || []).join(':') : '') + ' · ngl ' + a.n_gpu_layers;
      const l = load.get(s.id);
      const row = el('tr', { 'data-instance': s.id },
        el('td', {}, el('i', { style: { display: 'inline-block', width: '8px', height: '8px', background: color(s.id), marginRight: '6px', borderRadius: '2px' } }), s.model_id),
        el('td', { className: 'state-' + s.status }, s.status),
        el('td', {}, placement),
        el('td', { className: 'num' }, mib(s.estimated_vram_mib)),
        el('td', { className: 'num' }, mib(s.actual_vram_mib)),
        el('td', { className: 'num' }, mib(s.estimated_host_mib)),
        el('td', { className: 'num' }, s.in_flight),
        el('td', { className: 'num' }, l && l.predictedTokensPerSecond != null ? l.predictedTokensPerSecond.toFixed(1) : '-'),
        el('td', { className: 'num' }, l && l.slotsTotal != null ? l.slotsBusy + ' / ' + l.slotsTotal : '-'),
        el('td', {}, dur(s.uptime_s)),
        el('td', {}, dur(s.idle_s) + ' / ' + (s.ttl_s ? dur(s.ttl_s) : 'never')),
      );
      body.append(row);
    }
    table.append(body);
    box.append(table);
  }

  const STATES = new Set(['ready', 'starting', 'stopping']);
  // One instance of a node, as a colour chip with its model and state (colours keyed by node: ids may repeat).
  function chip(n, i) {
    return el('span', { 'data-model': i.model },
      el('i', { style: { background: color(n.local ? i.id : n.name + '/' + i.id) } }),
      i.model + ' · ', el('span', STATES.has(i.state) ? { className: 'state-' + i.state } : {}, i.state),
      i.inFlight > 0 ? ' · ' + i.inFlight + ' in flight' : '');
  }

  function nodeCard(n) {
    const seen = n.local ? '' : n.lastSeenS == null ? 'never heard from' : (n.reachable ? 'seen ' : 'last seen ') + dur(n.lastSeenS) + ' ago';
    const card = el('div', { className: 'node' + (n.local ? ' local' : '') + (n.reachable ? '' : ' down'), 'data-node': n.name },
      el('div', { className: 'nhead' },
        el('span', { className: 'name' }, n.name),
        n.local ? el('span', { className: 'tag' }, 'this node') : '',
        el('span', { className: 'pill ' + (n.reachable ? 'up' : 'down') }, n.reachable ? 'up' : 'down'),
        el('span', { className: 'seen' }, seen)));
    if (!n.reachable && n.error) card.append(el('div', { className: 'err' }, n.error));
    // What a node that does not answer last told is still drawn, dimmed.
    const known = el('div', { className: 'known' });
    const count = n.instances.length;
    known.append(el('div', { className: 'facts' }, n.url),
      el('div', { className: 'facts' }, (n.reachable ? '' : 'last known: ') + [count + (count === 1 ? ' instance' : ' instances'), n.queued + ' queued', n.models.length + ' models on disk'].join(' · ')));
    for (const g of n.gpus) {
      const on = n.instances.filter((i) => i.gpus.includes(g.index));
      const used = Math.max(0, g.totalMiB - g.freeMiB);
      const cols = on.map((i) => color(n.local ? i.id : n.name + '/' + i.id));
      const paint = cols.length === 0 ? 'var(--other)' : cols.length === 1 ? cols[0]
        : 'repeating-linear-gradient(135deg, ' + cols.map((c, k) => c + ' ' + 6 * k + 'px ' + 6 * (k + 1) + 'px').join(', ') + ')';
      const title = (on.length ? on.map((i) => i.model).join(', ') : 'other') + ': ' + mib(used) + ' used';
      const legend = el('div', { className: 'legend' }, ...on.map((i) => chip(n, i)));
      if (on.length === 0 && used > 0) legend.append(el('span', {}, el('i', { style: { background: 'var(--other)' } }), 'other ' + mib(used)));
      legend.append(el('span', {}, el('i', { style: { background: 'var(--free)' } }), 'free ' + mib(g.freeMiB)));
      known.append(el('div', { className: 'ngpu', 'data-gpu': g.index },
        el('div', { className: 'gname' }, el('b', {}, 'GPU ' + g.index + ' · ' + g.name), el('span', {}, mib(used) + ' used of ' + mib(g.totalMiB))),
        el('div', { className: 'bar' }, used > 0 && g.totalMiB > 0 ? el('div', { title, style: { width: (100 * used / g.totalMiB) + '%', background: paint } }) : ''),
        legend));
    }
    const cpu = n.instances.filter((i) => i.gpus.length === 0);
    if (cpu.length > 0 || n.gpus.length === 0) {
      known.append(el('div', { className: 'ncpu' },
        el('div', { className: 'gname' }, el('b', {}, 'CPU'), el('span', {}, n.gpus.length === 0 ? 'no GPU' : '')),
        el('div', { className: 'legend' }, ...(cpu.length ? cpu.map((i) => chip(n, i)) : ['no model on the CPU']))));
    }
    card.append(known);
    return card;
  }

  function renderNodes(h) {
    const c = h.cluster;
    $('nodes-section').hidden = !c;
    $('nodewrap').hidden = !c;
    $('gpus-title').textContent = c ? 'GPUs of ' + c.node + ' (this node)' : 'GPUs';
    $('instances-title').textContent = c ? 'Instances of ' + c.node : 'Instances';
    if (!c) return;
    $('node').textContent = c.node;
    $('nodes').replaceChildren(...c.nodes.map(nodeCard));
  }

  async function tick() {
    try {
      const h = await (await fetch('/health', { headers: headers() })).json();
      let status = null;
      const r = await fetch('/status', { headers: headers() });
      if (r.status === 401) $('keyform').style.display = 'block';
      else if (r.ok) status = await r.json();
      // Without a key /health tells only that the proxy is up: nothing to draw until one is given.
      if (!h.pool) return;
      renderHeader(h);
      renderNodes(h);
      renderGpus(h, status);
      renderInstances(h, status);
      $('updated').textContent = new Date().toLocaleTimeString();
      $('error').style.display = 'none';
    } catch (err) {
      $('error').textContent = 'The proxy does not answer: ' + err.message;
      $('error').style.display = 'block';
    }
  }
  tick();
  setInterval(tick, 2000);
})();
</script>
</body>
</html>
`;

export function registerDashboard(app: ProxyApp): void {
  app.get(DASHBOARD_PATH, async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE));
}
