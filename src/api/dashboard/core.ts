/**
 * The dashboard's shared script: DOM helpers (every string goes in as text, never HTML: names come from configs,
 * clients and other machines), the API key (asked for on a 401, kept in localStorage), JSON calls, live feeds read
 * from fetch() (EventSource cannot send the key), the tabs (#overview, #models, ...) and a toast for errors.
 * Written as String.raw without backticks or dollar-brace, so it is plain browser JavaScript.
 */
export const CORE_SCRIPT = String.raw`
  const COLORS = ['#61afef', '#c678dd', '#98c379', '#e5c07b', '#56b6c2', '#d19a66', '#be5046', '#7ec7a2'];
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'style') Object.assign(e.style, v);
      else if (k === 'className') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const mib = (v) => (v == null ? '-' : v >= 10240 ? (v / 1024).toFixed(1) + ' GiB' : Math.round(v) + ' MiB');
  const dur = (s) => (s == null ? '-' : s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : (s / 3600).toFixed(1) + ' h');
  const ms = (v) => (v == null ? '-' : v >= 10000 ? (v / 1000).toFixed(1) + ' s' : Math.round(v) + ' ms');
  const fixed = (v, d = 1) => (v == null ? '-' : Number(v).toFixed(d));
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
  const colorOf = new Map();
  const color = (id) => { if (!colorOf.has(id)) colorOf.set(id, COLORS[colorOf.size % COLORS.length]); return colorOf.get(id); };
  /** What the pages share: the last /health (the Overview's poll keeps it fresh). */
  const state = { health: null };
  const headers = () => { const k = localStorage.getItem('lsp-key'); return k ? { authorization: 'Bearer ' + k } : {}; };

  function askKey() { $('keyform').style.display = 'block'; }
  $('keyform').addEventListener('submit', (e) => {
    e.preventDefault();
    localStorage.setItem('lsp-key', $('key').value);
    $('keyform').style.display = 'none';
    for (const fn of onKey) fn();
  });
  const onKey = [];

  let toastTimer;
  function toast(text, ok) {
    const t = $('toast');
    t.textContent = text;
    t.className = 'toast' + (ok ? ' ok' : '');
    t.style.display = 'block';
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.style.display = 'none'; }, ok ? 2500 : 7000);
  }

  /** An error answer's message (OpenAI's, Anthropic's or Ollama's shape). */
  async function errorText(res) {
    const text = await res.text();
    try { const j = JSON.parse(text); return (j.error && (j.error.message || j.error)) || text; } catch { return text || res.statusText; }
  }

  /** A JSON call with the key; a 401 asks for the key, any error throws with the proxy's message. */
  async function api(path, options = {}) {
    const init = { ...options, headers: { ...headers(), ...(options.body ? { 'content-type': 'application/json' } : {}), ...(options.headers || {}) } };
    const res = await fetch(path, init);
    if (res.status === 401) askKey();
    if (!res.ok) { const err = new Error(await errorText(res)); err.status = res.status; throw err; }
    return res.json();
  }

  /**
   * A live SSE feed read through fetch (it carries the key): onEvent(name, data) per event; reconnects after 2 s
   * while wanted() says so. Returns a stop function.
   */
  /** Reads an SSE response to its end: each event's name and data (its data lines joined), as they arrive. */
  async function readSse(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) name = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (data) onEvent(name, data);
      }
    }
  }

  function feed(path, onEvent, onState) {
    let controller = new AbortController();
    let stopped = false;
    const run = async () => {
      while (!stopped) {
        try {
          const res = await fetch(path, { headers: headers(), signal: controller.signal });
          if (res.status === 401) { askKey(); onState && onState('needs an API key'); }
          else if (!res.ok) onState && onState(await errorText(res));
          else {
            onState && onState('live');
            await readSse(res, (name, data) => { try { onEvent(name, JSON.parse(data)); } catch (err) { console.error(err); } });
            onState && onState('reconnecting');
          }
        } catch (err) {
          if (stopped) return;
          onState && onState('reconnecting');
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    run();
    return () => { stopped = true; controller.abort(); };
  }

  /** One state badge: live (green, pulsing), or a message. */
  function setFeedState(node, state) {
    node.className = 'badge ' + (state === 'live' ? 'live' : state === 'reconnecting' ? 'warn' : 'err');
    node.textContent = state;
  }

  // Tabs: each page has show() (and hide()); the hash says which is open.
  const pages = {};
  function route() {
    const name = (location.hash || '#overview').slice(1);
    const current = pages[name] ? name : 'overview';
    for (const [n, p] of Object.entries(pages)) {
      const open = n === current;
      $('page-' + n).classList.toggle('active', open);
      document.querySelector('nav a[href="#' + n + '"]').classList.toggle('active', open);
      if (open && !p.open) { p.open = true; p.show && p.show(); }
      if (!open && p.open) { p.open = false; p.hide && p.hide(); }
    }
  }
  window.addEventListener('hashchange', route);
`;
