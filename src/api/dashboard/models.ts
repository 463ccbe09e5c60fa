/**
 * The Models page: every configured model, cached Hugging Face model and running instance (GET /models), each
 * with where it would go on this machine's GPUs now (the planner's answer, nothing loaded), and Load / Unload
 * buttons (POST /models/load, /models/unload: admin routes when keys are set).
 */
export const MODELS_SCRIPT = String.raw`
  (() => {
    let timer;
    let busy = new Map();
    const KIND = { configured: 'configured', cached: 'Hub cache', running: 'running' };

    async function act(verb, id) {
      busy.set(id, verb);
      draw(lastRows);
      try {
        const r = await api('/models/' + verb, { method: 'POST', body: JSON.stringify({ model: id }) });
        toast(verb === 'load' ? id + ' is ready (' + ms(r.load_ms) + ')' : id + ' unloaded' + (r.unloaded && r.unloaded.length ? ' (' + r.unloaded.join(', ') + ')' : ''), true);
      } catch (err) {
        toast((verb === 'load' ? 'Load' : 'Unload') + ' of ' + id + ' failed: ' + err.message + (err.status === 403 ? ' (needs an admin key)' : ''));
      } finally {
        busy.delete(id);
        refresh();
      }
    }

    function estimateCell(m) {
      const e = m.estimate;
      if (!e) return el('td', { className: 'muted' }, m.kind === 'running' ? 'running' : '-');
      // Loaded: what it holds; where another one would go is the Plan page's question.
      if (m.instances.some((i) => i.state !== 'stopping') && e.decision === 'place') return el('td', { className: 'muted' }, 'loaded · ' + mib(e.vram_mib) + ' VRAM · ' + mib(e.host_mib) + ' host (estimate)');
      if (e.decision === 'place') {
        return el('td', { className: 'wrap', title: e.reason },
          el('span', {}, e.summary), ' ', el('span', { className: 'muted' }, '· ' + mib(e.vram_mib) + ' VRAM · ' + mib(e.host_mib) + ' host'),
          e.evicts.length ? el('div', { className: 'hint' }, 'would stop ' + e.evicts.join(', ') + ' first') : '');
      }
      return el('td', { className: 'wrap', title: e.reason }, el('span', { className: 'badge ' + (e.decision === 'wait' ? 'warn' : 'err') }, e.decision === 'refuse' ? 'does not fit' : e.decision), ' ', el('span', { className: 'hint' }, e.reason));
    }

    let lastRows = [];
    function draw(rows) {
      lastRows = rows;
      const box = $('models-table');
      if (rows.length === 0) { box.replaceChildren(el('div', { className: 'empty' }, 'No model configured, cached or running. Requests may still name a .gguf file or a Hugging Face repo.')); return; }
      const head = el('tr', {}, ...['model', 'source', 'on this machine (estimate, nothing loaded)', 'running', ''].map((c) => el('th', {}, c)));
      const body = el('tbody');
      for (const m of rows) {
        const running = m.instances.filter((i) => i.state !== 'stopping');
        const doing = busy.get(m.id);
        const canLoad = !(m.estimate === null && m.kind === 'configured' && m.source.endsWith('backend'));
        body.append(el('tr', { 'data-model': m.id },
          el('td', {}, el('b', {}, m.id), ' ', el('span', { className: 'badge' }, KIND[m.kind] || m.kind), m.description ? el('div', { className: 'hint' }, m.description) : ''),
          el('td', { className: 'wrap muted mono', style: { maxWidth: '300px' } }, m.source),
          estimateCell(m),
          el('td', {}, running.length ? running.map((i) => el('div', {}, el('i', { style: { display: 'inline-block', width: '8px', height: '8px', background: color(i.id), marginRight: '6px', borderRadius: '2px' } }), i.id + ' ', el('span', { className: 'state-' + i.state }, i.state), el('span', { className: 'muted' }, ' · ' + i.placement))) : el('span', { className: 'muted' }, '-')),
          el('td', { style: { textAlign: 'right' } },
            doing ? el('span', { className: 'badge warn' }, doing === 'load' ? 'loading…' : 'unloading…') :
            running.length ? el('button', { className: 'small danger', 'data-action': 'unload', onclick: () => act('unload', m.id) }, 'Unload') :
            canLoad ? el('button', { className: 'small primary', 'data-action': 'load', onclick: () => act('load', m.id) }, 'Load') : ''),
        ));
      }
      box.replaceChildren(el('table', {}, el('thead', {}, head), body));
    }

    async function refresh() {
      try {
        const doc = await api('/models');
        draw(doc.models);
        $('models-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      } catch (err) {
        $('models-table').replaceChildren(el('div', { className: 'empty' }, 'Cannot list the models: ' + err.message));
      }
    }
    pages.models = {
      show() { refresh(); timer = setInterval(refresh, 4000); },
      hide() { clearInterval(timer); },
    };
    onKey.push(() => pages.models.open && refresh());
  })();
`;
