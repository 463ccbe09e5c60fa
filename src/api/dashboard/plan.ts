/**
 * The Plan page: any model id (an alias, a .gguf file, a Hugging Face repo:variant) and a context size, and the
 * proxy answers where it would place it now, what it would stop first and each device's memory, without loading
 * it (GET /plan): each GPU's bar shows the proxy's instances (those it would stop hatched), other use, what the
 * model would take (green stripes) and the room left.
 */
export const PLAN_SCRIPT = String.raw`
  (() => {
    async function suggestions() {
      try {
        const doc = await api('/models');
        $('plan-models').replaceChildren(...doc.models.map((m) => el('option', { value: m.id })));
      } catch { /* the list is a convenience */ }
    }

    function deviceCard(d, total) {
      const bar = el('div', { className: 'bar' });
      const legend = el('div', { className: 'legend' });
      let ours = 0;
      for (const o of d.ours) {
        ours += o.mib;
        bar.append(el('div', { className: o.evicted ? 'evicted' : '', title: o.model + ' ' + mib(o.mib) + (o.evicted ? ' (would be stopped)' : ''), style: { width: (100 * o.mib / d.total_mib) + '%', background: color(o.instance) } }));
        legend.append(el('span', {}, el('i', { style: { background: color(o.instance) } }), o.model + ' ' + mib(o.mib) + (o.evicted ? ' — stopped first' : '')));
      }
      const other = Math.max(0, d.used_mib - ours);
      if (other > 0.5) {
        bar.append(el('div', { title: 'other ' + mib(other), style: { width: (100 * other / d.total_mib) + '%', background: 'var(--other)' } }));
        legend.append(el('span', {}, el('i', { style: { background: 'var(--other)' } }), 'other ' + mib(other)));
      }
      if (d.would_take_mib > 0) {
        bar.append(el('div', { className: 'would', title: 'this model ' + mib(d.would_take_mib), style: { width: (100 * d.would_take_mib / d.total_mib) + '%' } }));
        legend.append(el('span', {}, el('i', { className: 'would', style: { background: 'repeating-linear-gradient(135deg, #98c379 0 3px, #7ea863 3px 6px)' } }), 'this model ' + mib(d.would_take_mib)));
      }
      const evicted = d.ours.filter((o) => o.evicted).reduce((a, o) => a + o.mib, 0);
      const left = d.free_mib + evicted - d.would_take_mib;
      legend.append(el('span', {}, el('i', { style: { background: 'var(--free)' } }), (d.chosen ? 'left after ' : 'free ') + mib(Math.max(0, d.chosen ? left : d.free_mib))));
      return el('div', { className: 'gpu' + (d.chosen ? ' chosen' : ''), 'data-gpu': d.id },
        d.chosen ? el('span', { className: 'pick' }, 'would go here') : '',
        el('div', { className: 'name' }, 'GPU ' + d.id + ' · ' + d.name), bar, legend,
        el('div', { className: 'facts' }, mib(d.used_mib) + ' used of ' + mib(d.total_mib) + ' · ' + mib(d.free_mib) + ' free now'));
    }

    function show(p) {
      const box = $('plan-result');
      const head = [];
      if (p.placement) {
        const onGpu = Object.values(p.placement.estimate_mib.gpus).reduce((a, b) => a + b, 0);
        head.push(el('div', { className: 'verdict', id: 'plan-verdict' }, 'Would run on ', el('b', {}, p.placement.summary), p.placement.gpu_names.length ? ' (' + p.placement.gpu_names.join(', ') + ')' : '', ' — ' + mib(onGpu) + ' on GPUs, ' + mib(p.placement.estimate_mib.host) + ' on the host'));
        head.push(el('div', { className: 'hint' }, p.placement.reason + ' · ' + p.placement.n_gpu_layers + ' of ' + p.placement.n_layers + ' layers offloaded'));
      } else {
        head.push(el('div', { className: 'verdict no', id: 'plan-verdict' }, 'Would not start now: ', el('b', {}, p.decision === 'refuse' ? 'it does not fit' : 'waiting for memory'), ' — ' + p.reason));
      }
      if (p.evicts.length) head.push(el('div', { className: 'hint', style: { color: '#e5c07b' } }, 'First it would stop: ' + p.evicts.map((e) => e.model + ' (' + e.instance + ')').join(', ')));
      for (const r of p.already_running) head.push(el('div', { className: 'hint' }, 'Already running as ' + r.instance + ' on ' + r.placement + ': a request would go there.'));
      const facts = el('div', { className: 'facts', style: { margin: '6px 0 14px', color: 'var(--dim)', fontSize: '12px' } },
        p.model + ' · ctx ' + p.ctx + ' · ' + p.parallel + ' slot' + (p.parallel === 1 ? '' : 's') + ' · ' + (p.on_disk ? p.file : 'not downloaded (header read from the Hub)') + ' · each GPU keeps ' + mib(p.reserve_mib) + ' free');
      // :auto — which quantization it took for this machine, and the numbers of each candidate.
      const q = p.quantization;
      const quant = q ? [
        el('h2', {}, 'Quantization (:auto)'),
        el('div', { className: 'hint', id: 'plan-quant' }, q.reason),
        el('table', {}, el('thead', {}, el('tr', {}, ...['variant', 'file', 'one GPU', 'split', 'CPU'].map((h) => el('th', {}, h)))),
          el('tbody', {}, ...q.candidates.map((c) => el('tr', { className: c.variant === q.chosen ? 'chosen' : '' },
            el('td', {}, c.variant === q.chosen ? el('b', {}, c.variant + ' ✓') : c.variant),
            el('td', { className: 'num' }, mib(c.fileBytes / 1048576)),
            el('td', { className: 'num' }, !c.estimated ? 'not read' : (c.bytes !== undefined ? mib(c.bytes / 1048576) : '-') + (c.fitsOneGpu ? ' fits' : '')),
            el('td', {}, c.fitsSplit ? 'fits' : c.estimated ? 'no' : ''),
            el('td', {}, c.fitsCpu ? 'fits' : c.estimated ? 'no' : ''))))),
      ] : [];
      const gpus = p.devices.length ? el('div', { className: 'gpus' }, ...p.devices.map((d) => deviceCard(d))) : el('div', { className: 'empty' }, 'No GPU: it would run on the CPU.');
      const host = el('div', { className: 'facts', style: { marginTop: '10px', color: 'var(--dim)' } }, 'Host RAM: ' + mib(p.host.available_mib) + ' available of ' + mib(p.host.total_mib) + (p.host.would_take_mib ? ' · this model would take ' + mib(p.host.would_take_mib) : ''));
      box.replaceChildren(el('div', { className: 'panel' }, ...head, facts, ...quant, el('h2', {}, 'Devices now'), gpus, host));
    }

    async function plan(e) {
      if (e) e.preventDefault();
      const model = $('plan-model').value.trim();
      if (!model) return;
      const ctx = $('plan-ctx').value.trim();
      $('plan-go').disabled = true;
      $('plan-result').replaceChildren(el('div', { className: 'muted' }, 'planning…'));
      try {
        show(await api('/plan?model=' + encodeURIComponent(model) + (ctx ? '&ctx=' + encodeURIComponent(ctx) : '')));
        history.replaceState(null, '', '#plan');
      } catch (err) {
        $('plan-result').replaceChildren(el('div', { className: 'panel' }, el('div', { className: 'verdict no' }, el('b', {}, 'Cannot plan it: '), err.message)));
      } finally {
        $('plan-go').disabled = false;
      }
    }
    $('plan-form').addEventListener('submit', plan);
    pages.plan = { show() { suggestions(); $('plan-model').focus(); } };
  })();
`;
