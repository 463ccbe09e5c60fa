/**
 * The Logs page: pick the proxy or an instance (GET /logs) and its lines stream in live (GET /logs/:id/stream):
 * the last 300, then each new one; a filter, and following the end unless the reader scrolled up.
 */
export const LOGS_SCRIPT = String.raw`
  (() => {
    let stop;
    let lines = [];
    const MAX_LINES = 3000;

    function kind(line) {
      if (/\bERROR\b|\berror\b|failed/.test(line)) return 'e';
      if (/\bWARN\b|\bwarning\b/i.test(line)) return 'w';
      if (/^\S+ (DEBUG|TRACE)\b/.test(line)) return 'd';
      return 'i';
    }

    function add(line, live) {
      lines.push(line);
      if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
      const f = $('lg-filter').value.trim().toLowerCase();
      if (f && !line.toLowerCase().includes(f)) return;
      const view = $('lg-view');
      const follow = view.scrollTop + view.clientHeight >= view.scrollHeight - 30;
      view.append(el('div', { className: kind(line) + (live ? ' new' : '') }, line));
      while (view.childElementCount > MAX_LINES) view.firstElementChild.remove();
      if (follow) view.scrollTop = view.scrollHeight;
      $('lg-count').textContent = lines.length + ' lines';
    }

    function redraw() {
      const f = $('lg-filter').value.trim().toLowerCase();
      const view = $('lg-view');
      view.replaceChildren(...lines.filter((l) => !f || l.toLowerCase().includes(f)).map((l) => el('div', { className: kind(l) }, l)));
      view.scrollTop = view.scrollHeight;
    }

    function follow(id) {
      stop && stop();
      lines = [];
      $('lg-view').replaceChildren();
      localStorage.setItem('lsp-log', id);
      // Lines before the 'live' event are the backlog; later ones are new and flash.
      let live = false;
      stop = feed('/logs/' + encodeURIComponent(id) + '/stream?tail=300', (name, data) => {
        if (name === 'live') live = true;
        if (name === 'line') add(data, live);
        if (name === 'exit') add('— the instance exited —', true);
      }, (s) => {
        // A (re)connection sends the backlog again: start over.
        if (s === 'live') { lines = []; live = false; $('lg-view').replaceChildren(); }
        setFeedState($('lg-state'), s);
      });
    }

    async function sources() {
      try {
        const doc = await api('/logs');
        const select = $('lg-source');
        const current = select.value || localStorage.getItem('lsp-log');
        select.replaceChildren(...doc.logs.map((l) => el('option', { value: l.id }, l.label)));
        const ids = doc.logs.map((l) => l.id);
        select.value = ids.includes(current) ? current : (doc.logs.find((l) => l.kind === 'instance') || doc.logs[0]).id;
        return select.value;
      } catch (err) {
        $('lg-view').replaceChildren(el('div', { className: 'e' }, 'Cannot list the logs: ' + err.message + (err.status === 403 ? ' (logs need an admin key)' : '')));
        return undefined;
      }
    }

    $('lg-source').addEventListener('change', () => follow($('lg-source').value));
    $('lg-refresh').addEventListener('click', async () => { const id = await sources(); if (id) follow(id); });
    $('lg-filter').addEventListener('input', redraw);
    pages.logs = {
      async show() { const id = await sources(); if (id) follow(id); },
      hide() { stop && stop(); stop = undefined; },
    };
    onKey.push(() => pages.logs.open && pages.logs.show());
  })();
`;
