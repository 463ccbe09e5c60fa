/**
 * The Requests page: the recent requests (GET /requests) and each new one as it ends (GET /requests/stream), a
 * filter by model, and a click on a row for everything its record holds (its bodies when server.captureBodies).
 */
export const REQUESTS_SCRIPT = String.raw`
  (() => {
    let stop;
    let rows = [];
    let selected = null;
    const MAX_ROWS = 500;

    function statusBadge(r) {
      if (r.aborted) return el('span', { className: 'badge warn' }, r.status + ' aborted');
      return el('span', { className: 'badge ' + (r.status < 400 ? 'ok' : 'err') }, String(r.status));
    }

    function row(r, fresh) {
      return el('tr', { className: 'clickable' + (fresh ? ' fresh' : '') + (selected === r.id ? ' selected' : ''), 'data-request': r.id, onclick: () => pick(r.id) },
        el('td', {}, clock(r.time)),
        el('td', {}, r.model || '-'),
        el('td', { className: 'muted' }, r.endpoint + (r.stream ? ' ⇢' : '')),
        el('td', { className: 'muted' }, r.key || '-'),
        el('td', {}, r.instance ? el('span', {}, el('i', { style: { display: 'inline-block', width: '8px', height: '8px', background: color(r.instance), marginRight: '6px', borderRadius: '2px' } }), r.instance, el('span', { className: 'muted' }, r.placement ? ' · ' + r.placement : '')) : el('span', { className: 'muted' }, '-')),
        el('td', {}, statusBadge(r)),
        el('td', { className: 'num', 'data-field': 'prompt_tokens' }, r.prompt_tokens == null ? '-' : r.prompt_tokens),
        el('td', { className: 'num', 'data-field': 'completion_tokens' }, r.completion_tokens == null ? '-' : r.completion_tokens),
        el('td', { className: 'num' }, ms(r.ttft_ms)),
        el('td', { className: 'num' }, fixed(r.generation_tps)),
        el('td', { className: 'num', title: 'queued ' + ms(r.queued_ms) + (r.load_ms ? ', waited ' + ms(r.load_ms) + ' for its model to load' : '') }, ms(r.duration_ms), r.load_ms ? el('div', { className: 'hint' }, 'load ' + ms(r.load_ms)) : ''));
    }

    function visible() {
      const f = $('rq-filter').value.trim().toLowerCase();
      return f ? rows.filter((r) => (r.model || '').toLowerCase().includes(f)) : rows;
    }

    function draw(freshId) {
      const list = visible();
      $('rq-count').textContent = list.length + (list.length === rows.length ? '' : ' of ' + rows.length) + ' requests';
      const box = $('rq-table');
      if (list.length === 0) { box.replaceChildren(el('div', { className: 'empty' }, rows.length ? 'No request matches the filter.' : 'No request yet. Send one (the Playground does) and it shows here as soon as it ends.')); return; }
      const cols = ['time', 'model', 'endpoint', 'key', 'where', 'status', 'in', 'out', 'TTFT', 'tok/s', 'took'];
      const numeric = new Set(['in', 'out', 'TTFT', 'tok/s', 'took']);
      const table = el('table', {}, el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', numeric.has(c) ? { className: 'num' } : {}, c)))), el('tbody', {}, ...list.map((r) => row(r, r.id === freshId))));
      box.replaceChildren(table);
    }

    async function pick(id) {
      selected = id;
      draw();
      const box = $('rq-detail');
      box.replaceChildren(el('div', { className: 'muted' }, 'loading…'));
      try {
        const r = await api('/requests/' + id);
        const facts = [
          ['request', '#' + r.id + ' · ' + new Date(r.time).toLocaleString()],
          ['route', r.method + ' ' + r.path + ' (' + r.family + ')'],
          ['model', r.model || '-'],
          ['streamed', r.stream == null ? '-' : r.stream ? 'yes' : 'no'],
          ['key', r.key || '-'],
          ['served by', r.instance ? r.instance + (r.node ? ' on node ' + r.node : '') : '-'],
          ['placement', r.placement || '-'],
          ['status', r.status + ' · ' + r.outcome + (r.aborted ? ' (client went away)' : '')],
          ['tokens', (r.prompt_tokens == null ? '-' : r.prompt_tokens) + ' in' + (r.cached_tokens ? ' (' + r.cached_tokens + ' cached)' : '') + ' · ' + (r.completion_tokens == null ? '-' : r.completion_tokens) + ' out'],
          ['prompt speed', r.prompt_tps == null ? '-' : fixed(r.prompt_tps) + ' tok/s'],
          ['generation', r.generation_tps == null ? '-' : fixed(r.generation_tps) + ' tok/s'],
          ['first token', ms(r.ttft_ms)],
          ['queued', ms(r.queued_ms)],
          ['load', r.load_ms == null ? 'model was loaded' : ms(r.load_ms)],
          ['total', ms(r.duration_ms)],
          ['agents', r.agents ? r.agents.join(', ') : '-'],
        ];
        const parts = [el('h3', {}, 'Request #' + r.id), el('dl', { className: 'kv' }, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))];
        if (r.error) parts.push(el('div', { className: 'err', style: { marginTop: '8px' } }, r.error));
        if (r.bodies) {
          let pretty = r.bodies.request;
          try { pretty = JSON.stringify(JSON.parse(pretty), null, 2); } catch { /* cut or not JSON */ }
          parts.push(el('h2', {}, 'Request body'), el('pre', { className: 'body mono' }, pretty || '(empty)'));
          parts.push(el('h2', {}, 'Answer' + (r.bodies.truncated ? ' (cut at server.captureBodyKiB)' : '')), el('pre', { className: 'body mono' }, r.bodies.response || '(empty)'));
        } else parts.push(el('div', { className: 'hint', style: { marginTop: '10px' } }, 'Bodies are not kept (server.captureBodies is off).'));
        box.replaceChildren(...parts);
      } catch (err) {
        box.replaceChildren(el('div', { className: 'err' }, err.message));
      }
    }

    async function start() {
      try {
        const doc = await api('/requests?limit=200');
        rows = doc.requests;
        $('rq-capacity').textContent = 'keeps the last ' + doc.capacity + ' (server.requestLog)';
        draw();
      } catch (err) {
        $('rq-table').replaceChildren(el('div', { className: 'empty' }, 'Cannot read the requests: ' + err.message + (err.status === 403 ? ' (the request log needs an admin key)' : '')));
      }
      stop = feed('/requests/stream', (name, r) => {
        if (name !== 'request') return;
        rows.unshift(r);
        if (rows.length > MAX_ROWS) rows.length = MAX_ROWS;
        draw(r.id);
      }, (s) => setFeedState($('rq-state'), s));
    }
    $('rq-filter').addEventListener('input', () => draw());
    pages.requests = { show: start, hide() { stop && stop(); } };
    onKey.push(() => { if (pages.requests.open) { stop && stop(); start(); } });
  })();
`;
