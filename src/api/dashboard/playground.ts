/**
 * The Playground page: pick a model, chat with it streamed through POST /v1/chat/completions (the same path as
 * any client, so slash-command agents work: "/json ..." and the others loaded), see the model's thinking when it
 * sends reasoning_content, and under each answer its tokens, speeds (llama-server's timings) and where it ran
 * (its request record, named by the x-llama-smart-proxy-request header).
 */
export const PLAYGROUND_SCRIPT = String.raw`
  (() => {
    const history = [];
    let controller;

    async function loadModels() {
      const select = $('pg-model');
      try {
        const doc = await api('/v1/models');
        const chosen = select.value || localStorage.getItem('lsp-pg-model');
        const ids = doc.data.map((m) => m.id);
        select.replaceChildren(...doc.data.map((m) => el('option', { value: m.id }, m.id + (m.status && m.status !== 'unloaded' ? '  (' + m.status + ')' : ''))));
        if (chosen && ids.includes(chosen)) select.value = chosen;
      } catch (err) {
        toast('Cannot list the models: ' + err.message);
      }
      const agents = (state.health && state.health.agents || []).filter((a) => a.state === 'loaded' && a.endpoints.includes('chat/completions')).map((a) => '/' + a.name);
      $('pg-agents').textContent = agents.length ? 'Slash commands work here: ' + agents.join(' ') + ' (e.g. "' + agents[0] + ' your question").' : '';
    }

    function drawEmpty() {
      if (history.length) return;
      $('pg-chat').replaceChildren(el('div', { className: 'empty-chat' }, 'Ask the model something. The answer streams as llama-server writes it; its speed and where it ran show under it.'));
    }

    function bubble(role) {
      const think = el('div', { className: 'think', style: { display: 'none' } });
      const text = el('span', { className: 'caret' });
      const stats = el('div', { className: 'stats', style: { display: 'none' } });
      const node = el('div', { className: 'msg ' + role }, think, text, stats);
      const chat = $('pg-chat');
      if (!history.length || chat.querySelector('.empty-chat')) chat.replaceChildren();
      chat.append(node);
      chat.scrollTop = chat.scrollHeight;
      return { node, think, text, stats };
    }

    async function send() {
      const input = $('pg-input');
      const content = input.value.trim();
      const model = $('pg-model').value;
      if (!content || !model || controller) return;
      localStorage.setItem('lsp-pg-model', model);
      input.value = '';
      const user = bubble('user');
      user.text.className = '';
      user.text.textContent = content;
      history.push({ role: 'user', content });
      const out = bubble('assistant');
      const messages = [];
      const system = $('pg-system').value.trim();
      if (system) messages.push({ role: 'system', content: system });
      messages.push(...history);
      controller = new AbortController();
      $('pg-send').disabled = true;
      $('pg-stop').disabled = false;
      const started = performance.now();
      let first = 0, answer = '', reasoning = '', usage = null, timings = null, requestId = null;
      try {
        const res = await fetch('/v1/chat/completions', {
          method: 'POST',
          headers: { ...headers(), 'content-type': 'application/json' },
          body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true }, max_tokens: Number($('pg-max').value) || 256, temperature: Number($('pg-temp').value) }),
          signal: controller.signal,
        });
        requestId = res.headers.get('x-llama-smart-proxy-request');
        if (res.status === 401) askKey();
        if (!res.ok) throw new Error(await errorText(res));
        await readSse(res, (_name, data) => {
          if (data === '[DONE]') return;
          const event = JSON.parse(data);
          if (event.error) throw new Error(event.error.message || JSON.stringify(event.error));
          if (event.usage) usage = event.usage;
          if (event.timings) timings = event.timings;
          const delta = event.choices && event.choices[0] && event.choices[0].delta;
          if (!delta) return;
          if (delta.reasoning_content) { reasoning += delta.reasoning_content; out.think.style.display = 'block'; out.think.textContent = reasoning.trim(); }
          if (delta.content) { if (!first) first = performance.now(); answer += delta.content; out.text.textContent = answer; }
          $('pg-chat').scrollTop = $('pg-chat').scrollHeight;
        });
        history.push({ role: 'assistant', content: answer });
      } catch (err) {
        if (err.name === 'AbortError') answer += ' [stopped]';
        else { out.node.className = 'msg error'; answer = answer || ''; out.text.textContent = (answer ? answer + '\n' : '') + err.message; }
        if (answer) history.push({ role: 'assistant', content: answer });
      } finally {
        out.text.className = '';
        if (!answer && out.node.className === 'msg assistant') out.text.textContent = '(no text)';
        controller = undefined;
        $('pg-send').disabled = false;
        $('pg-stop').disabled = true;
      }
      const facts = [];
      if (usage) facts.push(usage.prompt_tokens + ' in · ' + usage.completion_tokens + ' out');
      if (timings && timings.predicted_per_second) facts.push(fixed(timings.predicted_per_second) + ' tok/s');
      if (timings && timings.prompt_per_second) facts.push('prompt ' + fixed(timings.prompt_per_second, 0) + ' tok/s');
      if (first) facts.push('first token ' + ms(first - started));
      facts.push(ms(performance.now() - started) + ' total');
      out.stats.textContent = facts.join(' · ');
      out.stats.style.display = 'block';
      if (requestId) {
        try {
          const r = await api('/requests/' + requestId);
          const where = r.instance ? 'ran on ' + r.instance + (r.placement ? ' · ' + r.placement : '') : '';
          const load = r.load_ms ? 'loaded in ' + ms(r.load_ms) : '';
          out.stats.textContent = [out.stats.textContent, where, load].filter(Boolean).join(' · ');
          out.node.setAttribute('data-request', requestId);
        } catch { /* a user key cannot read records */ }
      }
    }

    $('pg-send').addEventListener('click', send);
    $('pg-stop').addEventListener('click', () => controller && controller.abort());
    $('pg-clear').addEventListener('click', () => { history.length = 0; drawEmpty(); });
    $('pg-input').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } });
    pages.playground = { show() { loadModels(); drawEmpty(); $('pg-input').focus(); } };
    onKey.push(() => pages.playground.open && loadModels());
  })();
`;
