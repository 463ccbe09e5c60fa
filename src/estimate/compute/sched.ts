/**
 * ggml's backend scheduler for graphs spread over several backends (ggml-backend.cpp,
 * ggml_backend_sched_split_graph), reduced to what decides memory:
 *
 * 1. each op gets a backend: where its destination buffer is, else where its weight is (an op on
 *    a CPU-resident weight moves to the first CUDA GPU when its batch is >= 32: "op offload"; RPC
 *    devices never take it), else
 *    graph inputs go to the CPU; the rest follow their neighbours (GPU backends expanded down and
 *    up first, then any backend);
 * 2. the graph is cut into splits of consecutive nodes on one backend; a source living on another
 *    backend is copied into the split's backend (once per backend per graph), and those copies
 *    are allocated in that backend's compute buffer at the start of the split. A CPU weight used
 *    by a GPU op is such a copy: this is why partial offload and -ngl 0 still cost VRAM;
 * 3. the allocator then runs over the rewritten graph (graph_copy) with each node in its
 *    backend's buffer.
 *
 * With pipeline parallelism (several GPUs, full offload) every split input and graph input gets
 * GGML_SCHED_MAX_COPIES = 4 copies that stay allocated.
 *
 * Backend indices: GPUs (and RPC devices) 0..n-1 in priority order, then the CPU (the last,
 * lowest priority). Every op is assumed supported by every backend, which holds for the ops of
 * the modelled graphs on CUDA and CPU (and RPC, which claims every op).
 */

import { FLAG_INPUT, FLAG_OUTPUT, Graph, Tensor } from './ggml.js';

export interface SchedOptions {
  /** Number of GPU backends, RPC devices included (the CPU is backend `nGpu`). */
  readonly nGpu: number;
  /** cparams.op_offload (llama-server default on; --no-op-offload turns it off). */
  readonly opOffload: boolean;
  /**
   * The backend op offload goes to: the first whose device has offload_op (a local CUDA GPU; an RPC
   * device has none). Unset: 0. Negative: none.
   */
  readonly offloadBackend?: number;
  /** Minimum batch for op offload (CUDA's op_offload_min_batch_size, default 32). */
  readonly offloadMinBatch: number;
  /** GGML_SCHED_MAX_COPIES when pipeline parallelism is on, else 1. */
  readonly nCopies: number;
  /**
   * Backend-specific allocation dependencies (ggml_backend_graph_optimize): tensors to keep
   * alive until a later node. Called per split.
   */
  readonly allocDeps?: (splitNodes: readonly Tensor[], backend: number) => { keep: Tensor[]; until: Tensor }[];
}

const VIEW_OPS = new Set(['VIEW', 'RESHAPE', 'PERMUTE', 'TRANSPOSE']);
const isViewOp = (t: Tensor): boolean => VIEW_OPS.has(t.op);

/** ggml_backend_cuda_device_offload_op: get_op_batch_size >= min batch. */
function opBatch(t: Tensor): number {
  switch (t.op) {
    case 'GET_ROWS':
      return 0;
    case 'MUL_MAT':
      return t.ne[1];
    case 'MUL_MAT_ID':
    case 'ROPE':
      return t.ne[2];
    default:
      return t.ne[1] * t.ne[2] * t.ne[3];
  }
}

interface Split {
  backend: number;
  start: number;
  end: number;
  inputs: Tensor[];
}

/**
 * Assigns backends, splits the graph and returns the graph the allocator sees (nodes and leafs
 * with `backend` set, split-input copies inserted).
 */
export function scheduleGraph(graph: Graph, o: SchedOptions): Graph {
  const cpu = o.nGpu;
  const offloadTo = o.offloadBackend ?? 0;
  const nodes = graph.nodes;

  const bufferDevice = (t: Tensor): number | undefined => (t.viewSrc ? t.viewSrc.buffer : t.buffer);

  // pass 1: ops with pre-allocated destinations, inputs, ops with weights
  const fromCur = (t: Tensor): number => {
    const own = bufferDevice(t);
    if (own !== undefined) return own;
    if (t.flags & FLAG_INPUT) return cpu;
    if (t.op !== 'ROPE' && t.op !== 'FLASH_ATTN_EXT') {
      for (const s of t.src) {
        if (s.buffer !== undefined && s.isWeight) {
          if (o.opOffload && s.buffer === cpu && offloadTo >= 0 && offloadTo < o.nGpu && opBatch(t) >= o.offloadMinBatch) return offloadTo;
          return s.buffer;
        }
      }
    }
    return -1;
  };
  for (const t of graph.leafs) {
    t.backend = t.forcedBackend >= 0 ? t.forcedBackend : fromCur(t);
  }
  for (const t of nodes) {
    t.backend = t.forcedBackend >= 0 ? t.forcedBackend : fromCur(t);
  }

  // pass 2: expand GPU backends down and up, then all backends down and up
  const expand = (order: Tensor[], gpuOnly: boolean): void => {
    let cur = -1;
    for (const t of order) {
      if (isViewOp(t)) continue;
      if (t.backend !== -1) cur = gpuOnly && t.backend === cpu ? -1 : t.backend;
      else if (cur !== -1) t.backend = cur;
    }
  };
  const reversed = [...nodes].reverse();
  expand(nodes, true);
  expand(reversed, true);
  expand(nodes, false);
  expand(reversed, false);

  const supported = (t: Tensor, b: number): boolean => {
    const dev = bufferDevice(t);
    if (dev !== undefined) return dev === b;
    let tb = t.backend;
    if (tb === -1 && t.viewSrc) tb = t.viewSrc.backend;
    return tb !== -1 && tb === b;
  };

  // pass 3: unassigned nodes go where most of their inputs are
  for (const t of nodes) {
    if (isViewOp(t) || t.backend !== -1) continue;
    let best = -1;
    for (let b = 0; b <= cpu; b++) {
      let n = 0;
      for (const s of t.src) {
        if ((s.backend !== -1 || (s.viewSrc && s.viewSrc.backend !== -1)) && supported(s, b)) n++;
      }
      if (n > best) {
        best = n;
        t.backend = b;
      }
    }
  }

  // pass 4: views follow their source, sources their consumer
  for (const t of nodes) {
    if (t.viewSrc && t.backend === -1) t.backend = t.viewSrc.backend;
    for (const s of t.src) {
      if (s.backend === -1) s.backend = s.viewSrc ? s.viewSrc.backend : t.backend;
    }
    if (t.backend === -1) t.backend = 0;
  }

  // pass 5: splits and the copies of their inputs
  const splits: Split[] = [];
  const copies = new Map<Tensor, Tensor[]>(); // per source: copy per backend (index = backend)
  const graphInputs: Tensor[] = [];
  const inputCopies = new Map<Tensor, Tensor[]>();
  let i = 0;
  while (i < nodes.length && isViewOp(nodes[i]!)) i++;
  let split: Split = { backend: i < nodes.length ? nodes[i]!.backend : cpu, start: 0, end: 0, inputs: [] };
  splits.push(split);
  let cur = split.backend;
  for (; i < nodes.length; i++) {
    const node = nodes[i]!;
    if (isViewOp(node)) continue;
    let needNew = false;
    if (node.backend === cur && split.inputs.length > 0) {
      for (const s of node.src) {
        // a weight on another, incompatible backend: a new split lets earlier weight copies be freed
        if (s.buffer !== undefined && s.isWeight && s.backend !== cur && !supported(s, cur)) {
          needNew = true;
          break;
        }
      }
    }
    if (node.backend !== cur || needNew) {
      split.end = i;
      split = { backend: node.backend, start: i, end: 0, inputs: [] };
      splits.push(split);
      cur = node.backend;
    }
    for (let j = 0; j < node.src.length; j++) {
      const s = node.src[j]!;
      if (s.flags & FLAG_INPUT && o.nCopies > 1 && !inputCopies.has(s)) {
        const cs: Tensor[] = [];
        for (let c = 0; c < o.nCopies; c++) {
          const cp = c === 0 ? s : copyOf(s);
          cp.flags |= FLAG_INPUT | FLAG_OUTPUT;
          cp.backend = s.backend;
          cs.push(cp);
        }
        inputCopies.set(s, cs);
        graphInputs.push(s);
      }
      if (s.backend !== cur && !supported(s, cur)) {
        let perBackend = copies.get(s);
        if (!perBackend) {
          perBackend = [];
          copies.set(s, perBackend);
        }
        let cp = perBackend[cur];
        if (!cp) {
          cp = copyOf(s);
          cp.backend = cur;
          if (o.nCopies > 1) cp.flags |= FLAG_INPUT | FLAG_OUTPUT;
          perBackend[cur] = cp;
          split.inputs.push(s);
        }
        node.src[j] = cp;
      }
    }
  }
  split.end = nodes.length;

  // graph_copy
  const out = new Graph();
  for (const sp of splits) {
    for (const input of sp.inputs) {
      const dep = new Tensor(input.type, [...input.ne] as Tensor['ne'], [...input.nb] as Tensor['nb'], input);
      dep.src.push(input);
      dep.backend = input.backend;
      out.nodes.push(dep);
      out.nodes.push(copies.get(input)![sp.backend]!);
    }
    const splitNodes = nodes.slice(sp.start, sp.end);
    const deps = o.allocDeps?.(splitNodes, sp.backend) ?? [];
    for (const n of splitNodes) {
      out.nodes.push(n);
      for (const d of deps) {
        if (d.until !== n) continue;
        const dep = new Tensor(d.keep[0]!.type, [...d.keep[0]!.ne] as Tensor['ne'], [...d.keep[0]!.nb] as Tensor['nb'], d.keep[0]!);
        for (const k of d.keep) dep.src.push(k);
        dep.backend = sp.backend;
        out.nodes.push(dep);
      }
    }
  }
  if (o.nCopies > 1) {
    for (const input of graphInputs) for (const c of inputCopies.get(input)!) out.leafs.push(c);
    for (const sp of splits) {
      for (const input of sp.inputs) {
        const cp = copies.get(input)![sp.backend]!;
        out.leafs.push(cp);
        // the other copies of a pipelined input: same size, same backend, never freed
        for (let c = 1; c < o.nCopies; c++) {
          const extra = copyOf(input);
          extra.backend = sp.backend;
          extra.flags |= FLAG_INPUT | FLAG_OUTPUT;
          out.leafs.push(extra);
        }
      }
    }
  }
  for (const l of graph.leafs) out.leafs.push(l);
  return out;
}

/** ggml_dup_tensor_layout: same type, shape and strides, no data, no op. */
function copyOf(t: Tensor): Tensor {
  return new Tensor(t.type, [...t.ne] as Tensor['ne'], [...t.nb] as Tensor['nb']);
}
