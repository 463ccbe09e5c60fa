/**
 * The Overview page (the dashboard as it was): polls /health and /status every two seconds and shows what runs
 * where: each GPU's memory split into the proxy's instances (their measured footprint, else their estimate), other
 * processes and free room; each instance's placement, memory and load. In a cluster (/health has `cluster`) a
 * Nodes section comes first: each node up or down (its error, when it was last heard from), its GPUs' memory and
 * the models on each GPU or on its CPU. Peers report per GPU only what is used and free, so a node's used memory
 * is drawn in the colours of the instances on that GPU, not split by them. The header's figures come from here too.
 */
export const OVERVIEW_SCRIPT = String.raw`
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
      if (r.status === 401) askKey();
      else if (r.ok) status = await r.json();
      // Without a key /health tells only that the proxy is up: nothing to draw until one is given.
      if (!h.pool) return;
      state.health = h;
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
  pages.overview = { show: tick };
  onKey.push(tick);
  tick();
  setInterval(tick, 2000);
`;
