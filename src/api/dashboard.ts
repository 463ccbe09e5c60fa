/**
 * GET /dashboard: the control room, one self-contained page (no build step, no external assets, works offline):
 * Overview (GPU memory by instance, instances), Models (load, unload, where each would go), Playground (chat with
 * any model, streamed), Requests (the live request log), Logs (an instance's or the proxy's lines, live) and Plan
 * (where a model would go and what it would evict, without loading it). Tabs are the URL's hash (#models, ...).
 * The page holds no data itself, so it stays open when API keys are set; it asks for a key when a call answers
 * 401 and keeps it in the browser's localStorage. Every string is put in the page as text (DOM nodes, never
 * HTML): names and errors come from configs, clients and other machines. Scripts: dashboard/*.ts.
 */
import { CORE_SCRIPT } from './dashboard/core.js';
import { LOGS_SCRIPT } from './dashboard/logs.js';
import { MODELS_SCRIPT } from './dashboard/models.js';
import { OVERVIEW_SCRIPT } from './dashboard/overview.js';
import { PLAN_SCRIPT } from './dashboard/plan.js';
import { PLAYGROUND_SCRIPT } from './dashboard/playground.js';
import { REQUESTS_SCRIPT } from './dashboard/requests.js';
import { STYLE } from './dashboard/style.js';
import type { ProxyApp } from './types.js';

export const DASHBOARD_PATH = '/dashboard';

const BODY = /* html */ `
<header>
  <h1>llama-smart-proxy</h1>
  <nav>
    <a href="#overview">Overview</a><a href="#models">Models</a><a href="#playground">Playground</a><a href="#requests">Requests</a><a href="#logs">Logs</a><a href="#plan">Plan</a>
  </nav>
  <div class="facts-bar">
    <span id="nodewrap" hidden>node <b id="node">-</b></span>
    <span>version <b id="version">-</b></span>
    <span>up <b id="uptime">-</b></span>
    <span>GPU source <b id="source">-</b></span>
    <span>instances <b id="pool">-</b></span>
    <span>queued <b id="queued">-</b></span>
    <span>updated <b id="updated">never</b></span>
  </div>
</header>
<main>
  <div id="error"></div>
  <form id="keyform"><label>API key <input id="key" type="password" autocomplete="off"></label> <button>use</button></form>

  <section id="page-overview" class="page">
    <section id="nodes-section" hidden>
      <h2>Nodes</h2>
      <div id="nodes" class="gpus"></div>
    </section>
    <div class="toolbar" style="margin:18px 0 8px"><h2 id="gpus-title" style="margin:0">GPUs</h2><span class="hint">placement strategy <b id="strategy">-</b></span></div>
    <div id="gpus" class="gpus"></div>
    <h2 id="instances-title">Instances</h2>
    <div id="instances"></div>
  </section>

  <section id="page-models" class="page">
    <div class="toolbar"><h2 style="margin:0">Models</h2><span class="hint">Estimates are the planner's answer for this machine now; nothing is loaded until you press Load.</span><span class="hint" id="models-updated"></span></div>
    <div id="models-table"></div>
  </section>

  <section id="page-playground" class="page">
    <div class="toolbar">
      <label>model <select id="pg-model" style="min-width:240px"></select></label>
      <label>max tokens <input id="pg-max" type="number" value="256" min="1" style="width:80px"></label>
      <label>temperature <input id="pg-temp" type="number" value="0.7" min="0" max="2" step="0.1" style="width:70px"></label>
      <label style="flex:1">system <input id="pg-system" placeholder="optional system prompt" style="flex:1;min-width:200px"></label>
      <button id="pg-clear" type="button">New chat</button>
    </div>
    <div class="panel">
      <div id="pg-chat" class="chat"></div>
      <div class="composer">
        <textarea id="pg-input" placeholder="Message (Enter sends, Shift+Enter for a new line)"></textarea>
        <div class="buttons"><button id="pg-send" class="primary" type="button">Send</button><button id="pg-stop" type="button" disabled>Stop</button></div>
      </div>
      <div class="hint" id="pg-agents" style="margin-top:6px"></div>
    </div>
  </section>

  <section id="page-requests" class="page">
    <div class="toolbar">
      <h2 style="margin:0">Requests</h2><span id="rq-state" class="badge">connecting</span>
      <label>model <input id="rq-filter" placeholder="filter" style="width:180px"></label>
      <span class="hint" id="rq-count"></span><span class="hint" id="rq-capacity"></span>
    </div>
    <div class="split">
      <div id="rq-table" class="scroll"></div>
      <div id="rq-detail" class="panel"><div class="muted">Click a request for its details.</div></div>
    </div>
  </section>

  <section id="page-logs" class="page">
    <div class="toolbar">
      <h2 style="margin:0">Logs</h2><span id="lg-state" class="badge">connecting</span>
      <label>of <select id="lg-source" style="min-width:220px"></select></label>
      <button id="lg-refresh" type="button" class="small">refresh list</button>
      <label>filter <input id="lg-filter" placeholder="text" style="width:180px"></label>
      <span class="hint" id="lg-count"></span>
    </div>
    <div id="lg-view" class="logview mono"></div>
  </section>

  <section id="page-plan" class="page">
    <form id="plan-form" class="toolbar">
      <label>model <input id="plan-model" list="plan-models" placeholder="alias, file.gguf or owner/repo:Q4_K_M" style="width:340px"></label>
      <datalist id="plan-models"></datalist>
      <label>context <input id="plan-ctx" type="number" min="1" placeholder="configured" style="width:110px"></label>
      <button id="plan-go" class="primary">Plan</button>
      <span class="hint">Where it would go now and what it would stop first. Nothing is loaded or downloaded.</span>
    </form>
    <div id="plan-result"></div>
  </section>
</main>
<div id="toast" class="toast"></div>
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llama-smart-proxy</title>
<style>${STYLE}</style>
</head>
<body>${BODY}
<script>
(() => {
${CORE_SCRIPT}
${OVERVIEW_SCRIPT}
${MODELS_SCRIPT}
${PLAYGROUND_SCRIPT}
${REQUESTS_SCRIPT}
${LOGS_SCRIPT}
${PLAN_SCRIPT}
  route();
})();
</script>
</body>
</html>
`;

export function registerDashboard(app: ProxyApp): void {
  app.get(DASHBOARD_PATH, async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE));
}
