/**
 * A miniature of ggml's graph layer: tensors with shape, strides and type, the ops llama.cpp's
 * transformer graphs use (with the result shapes and types of ggml.c), views, and graph
 * expansion in ggml's depth-first, left-to-right order (ggml_visit_parents_graph). No data is
 * ever computed: the graph only feeds the allocator simulation in gallocr.ts, which needs which
 * tensor is allocated, how big it is, who reads it and in which order.
 */

import { GGML_TYPES, type GgmlTypeInfo } from '../../gguf/ggml-types.js';

export type Op =
  | 'NONE' | 'VIEW' | 'RESHAPE' | 'PERMUTE' | 'TRANSPOSE'
  | 'GET_ROWS' | 'SET_ROWS' | 'MUL_MAT' | 'MUL_MAT_ID'
  | 'ADD' | 'ADD_ID' | 'MUL' | 'DIV' | 'SCALE' | 'CLAMP' | 'UNARY' | 'GLU'
  | 'RMS_NORM' | 'NORM' | 'ROPE' | 'SOFT_MAX' | 'FLASH_ATTN_EXT'
  | 'CONT' | 'CPY' | 'PAD' | 'SUM_ROWS' | 'ARGSORT' | 'CONCAT'
  | 'SSM_CONV' | 'SSM_SCAN' | 'L2_NORM' | 'REPEAT' | 'GATED_DELTA_NET';

/** ggml_op_can_inplace (ggml-alloc.c), restricted to the ops above. */
const INPLACE_OPS: ReadonlySet<Op> = new Set<Op>([
  'SCALE', 'ADD', 'ADD_ID', 'MUL', 'DIV', 'UNARY', 'ROPE', 'RMS_NORM', 'CLAMP', 'SOFT_MAX',
]);

export const FLAG_INPUT = 1;
export const FLAG_OUTPUT = 2;

export type Ne = [number, number, number, number];

let nextId = 0;

export class Tensor {
  readonly id = nextId++;
  /** The tensor whose memory a view uses (always a non-view, as in ggml_new_tensor_impl). */
  readonly viewSrc: Tensor | undefined;
  readonly src: Tensor[] = [];
  op: Op = 'NONE';
  flags = 0;
  name = '';
  /**
   * Device index of the buffer that holds this tensor when it is not allocated by the graph
   * allocator (weights, KV cache); undefined for tensors of the compute graph.
   */
  buffer: number | undefined;
  /** Whether that buffer holds weights (GGML_BACKEND_BUFFER_USAGE_WEIGHTS). */
  isWeight = false;
  /** Backend the scheduler runs the op on (sched.ts); -1 until assigned. */
  backend = -1;
  /** Backend forced by the graph builder (ggml_backend_sched_set_tensor_backend). */
  forcedBackend = -1;
  /** Optional per-op parameter the CUDA size rules need (flash attention). */
  faKvMax = 0;
  /** The graph that visited this tensor last (Graph.expand), by its stamp. */
  visitedBy = 0;

  // --- allocator state (ggml_gallocr's hash_node), reset per allocation pass
  nChildren = 0;
  nViews = 0;
  allocated = false;
  bufferId = 0;
  addrChunk = 0;
  addrOffset = 0;

  constructor(
    readonly type: GgmlTypeInfo,
    readonly ne: Ne,
    readonly nb: Ne,
    viewSrc?: Tensor,
  ) {
    this.viewSrc = viewSrc === undefined ? undefined : viewSrc.viewSrc ?? viewSrc;
  }

  get isView(): boolean {
    return this.viewSrc !== undefined;
  }

  /** ggml_nbytes (0 for an empty tensor) */
  get nbytes(): number {
    if (this.ne.some((n) => n <= 0)) return 0;
    const blck = this.type.blockSize;
    let bytes: number;
    if (blck === 1) {
      bytes = this.type.typeSize;
      for (let i = 0; i < 4; i++) bytes += (this.ne[i]! - 1) * this.nb[i]!;
    } else {
      bytes = (this.ne[0] * this.nb[0]) / blck;
      for (let i = 1; i < 4; i++) bytes += (this.ne[i]! - 1) * this.nb[i]!;
    }
    return bytes;
  }

  get nelements(): number {
    return this.ne[0] * this.ne[1] * this.ne[2] * this.ne[3];
  }

  get canInplace(): boolean {
    return INPLACE_OPS.has(this.op);
  }
}

export const F32 = GGML_TYPES.F32;
export const F16 = GGML_TYPES.F16;
export const I32 = GGML_TYPES.I32;
export const I64 = GGML_TYPES.I64;

function contiguousNb(type: GgmlTypeInfo, ne: Ne): Ne {
  const nb0 = type.typeSize;
  const nb1 = nb0 * (ne[0] / type.blockSize);
  const nb2 = nb1 * ne[1];
  const nb3 = nb2 * ne[2];
  return [nb0, nb1, nb2, nb3];
}

function ne4(ne: readonly number[]): Ne {
  return [ne[0] ?? 1, ne[1] ?? 1, ne[2] ?? 1, ne[3] ?? 1];
}

/** ggml_new_tensor: a fresh contiguous tensor. */
export function newTensor(type: GgmlTypeInfo, ne: readonly number[]): Tensor {
  const n = ne4(ne);
  return new Tensor(type, n, contiguousNb(type, n));
}

/** ggml_are_same_layout */
export function sameLayout(a: Tensor, b: Tensor): boolean {
  if (a.type !== b.type) return false;
  for (let i = 0; i < 4; i++) if (a.ne[i] !== b.ne[i] || a.nb[i] !== b.nb[i]) return false;
  return true;
}

export function isContiguous(t: Tensor): boolean {
  const nb = contiguousNb(t.type, t.ne);
  for (let i = 0; i < 4; i++) if (t.ne[i]! > 1 && t.nb[i] !== nb[i]) return false;
  return true;
}

function op(t: Tensor, name: Op, ...src: (Tensor | undefined)[]): Tensor {
  t.op = name;
  for (const s of src) if (s) t.src.push(s);
  return t;
}

/** ggml_dup_tensor + op: same type and shape, contiguous. */
function like(a: Tensor, name: Op, ...src: (Tensor | undefined)[]): Tensor {
  return op(newTensor(a.type, a.ne), name, ...src);
}

// --- views (no memory of their own)

export function view(a: Tensor, ne: readonly number[], nb: readonly number[]): Tensor {
  const n = ne4(ne);
  const strides: Ne = [a.nb[0], nb[0] ?? n[0] * a.nb[0], nb[1] ?? 0, nb[2] ?? 0];
  // ggml_view_Nd: missing strides follow from the previous dimension
  if (ne.length < 3) strides[2] = strides[1] * n[1];
  if (ne.length < 4) strides[3] = strides[2] * n[2];
  return op(new Tensor(a.type, n, strides, a), 'VIEW', a);
}

export function reshape(a: Tensor, ne: readonly number[]): Tensor {
  const n = ne4(ne);
  return op(new Tensor(a.type, n, contiguousNb(a.type, n), a), 'RESHAPE', a);
}

export function permute(a: Tensor, ax0: number, ax1: number, ax2: number, ax3: number): Tensor {
  const ne: Ne = [1, 1, 1, 1];
  const nb: Ne = [0, 0, 0, 0];
  const axes = [ax0, ax1, ax2, ax3];
  for (let i = 0; i < 4; i++) {
    ne[axes[i]!] = a.ne[i]!;
    nb[axes[i]!] = a.nb[i]!;
  }
  return op(new Tensor(a.type, ne, nb, a), 'PERMUTE', a);
}

export function transpose(a: Tensor): Tensor {
  const ne: Ne = [a.ne[1], a.ne[0], a.ne[2], a.ne[3]];
  const nb: Ne = [a.nb[1], a.nb[0], a.nb[2], a.nb[3]];
  return op(new Tensor(a.type, ne, nb, a), 'TRANSPOSE', a);
}

// --- ops with their own result tensor

export function getRows(a: Tensor, ids: Tensor): Tensor {
  const type = a.type === I32 ? I32 : F32;
  return op(newTensor(type, [a.ne[0], ids.ne[0], ids.ne[1], ids.ne[2]]), 'GET_ROWS', a, ids);
}

/** ggml_set_rows: returns a view of the destination (the KV cache). */
export function setRows(dst: Tensor, rows: Tensor, idxs: Tensor): Tensor {
  const t = new Tensor(dst.type, [...dst.ne] as Ne, [...dst.nb] as Ne, dst);
  return op(t, 'SET_ROWS', rows, idxs, dst);
}

export function mulMat(a: Tensor, b: Tensor): Tensor {
  return op(newTensor(F32, [a.ne[1], b.ne[1], b.ne[2], b.ne[3]]), 'MUL_MAT', a, b);
}

export function mulMatId(as: Tensor, b: Tensor, ids: Tensor): Tensor {
  return op(newTensor(F32, [as.ne[1], ids.ne[0], b.ne[2], 1]), 'MUL_MAT_ID', as, b, ids);
}

export const add = (a: Tensor, b: Tensor): Tensor => like(a, 'ADD', a, b);
/** ggml_add_id: adds the row of `b` selected per expert slot by `ids` (biased MoE experts). */
export const addId = (a: Tensor, b: Tensor, ids: Tensor): Tensor => like(a, 'ADD_ID', a, b, ids);
export const mul = (a: Tensor, b: Tensor): Tensor => like(a, 'MUL', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => like(a, 'DIV', a, b);
export const scale = (a: Tensor): Tensor => like(a, 'SCALE', a);
export const clamp = (a: Tensor): Tensor => like(a, 'CLAMP', a);
/** Element-wise unary ops (silu, gelu, tanh, sigmoid, ...). */
export const unary = (a: Tensor): Tensor => like(a, 'UNARY', a);
export const rmsNorm = (a: Tensor): Tensor => like(a, 'RMS_NORM', a);
export const norm = (a: Tensor): Tensor => like(a, 'NORM', a);
export const rope = (a: Tensor, pos: Tensor, factors?: Tensor): Tensor => like(a, 'ROPE', a, pos, factors);
/** ggml_soft_max_ext; `sinks` (ggml_soft_max_add_sinks) becomes src[2]. */
export const softMax = (a: Tensor, mask?: Tensor, sinks?: Tensor): Tensor => like(a, 'SOFT_MAX', a, mask, sinks);

/** ggml_swiglu_split / ggml_geglu_split / ggml_swiglu_oai: gate and up as separate tensors of one shape. */
export const gluSplit = (a: Tensor, b: Tensor): Tensor => like(a, 'GLU', a, b);

/** ggml_swiglu & co on one tensor holding gate and up side by side: half the width. */
export function glu(a: Tensor): Tensor {
  return op(newTensor(a.type, [a.ne[0] / 2, a.ne[1], a.ne[2], a.ne[3]]), 'GLU', a);
}

export function cont(a: Tensor, ne?: readonly number[]): Tensor {
  return op(newTensor(a.type, ne ?? a.ne), 'CONT', a);
}

/** ggml_cpy(a, b): copies a into b; the result is a view of b. */
export function cpyInto(a: Tensor, b: Tensor): Tensor {
  return op(new Tensor(b.type, [...b.ne] as Ne, [...b.nb] as Ne, b), 'CPY', a, b);
}

/** ggml_scale_inplace: a view of `a` (used on recurrent-state rows that live in the cache). */
export function scaleInplace(a: Tensor): Tensor {
  return op(new Tensor(a.type, [...a.ne] as Ne, [...a.nb] as Ne, a), 'SCALE', a);
}

/** ggml_l2_norm: same shape, contiguous. */
export const l2Norm = (a: Tensor): Tensor => like(a, 'L2_NORM', a);

/** ggml_repeat_4d */
export function repeat4d(a: Tensor, ne: readonly number[]): Tensor {
  return op(newTensor(a.type, ne), 'REPEAT', a);
}

/** ggml_ssm_conv: sx [d_conv - 1 + n_t, d_inner, n_s] and kernel c [d_conv, d_inner] -> F32 [d_inner, n_t, n_s]. */
export function ssmConv(sx: Tensor, c: Tensor): Tensor {
  return op(newTensor(F32, [c.ne[1], sx.ne[0] - c.ne[0] + 1, sx.ne[2]]), 'SSM_CONV', sx, c);
}

/**
 * ggml_ssm_scan(s, x, dt, A, B, C, ids, K): one F32 row of the output y (x's elements) followed by
 * K final states (d_state x head_dim x n_head per sequence in ids).
 */
export function ssmScan(s: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, ids: Tensor, K = 1): Tensor {
  const state = s.ne[0] * s.ne[1] * s.ne[2];
  return op(newTensor(F32, [x.nelements + K * state * ids.ne[0]]), 'SSM_SCAN', s, x, dt, A, B, C, ids);
}

/**
 * ggml_gated_delta_net: F32 [S_v * H, n_tokens * n_seqs + K * S_v * n_seqs], the attention output
 * followed by the K state snapshots.
 */
export function gatedDeltaNet(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, state: Tensor, K = 1): Tensor {
  const [sV, h, nTok, nSeqs] = v.ne;
  return op(newTensor(F32, [sV * h, nTok * nSeqs + K * sV * nSeqs]), 'GATED_DELTA_NET', q, k, v, g, beta, state);
}

export function cast(a: Tensor, type: GgmlTypeInfo): Tensor {
  return op(newTensor(type, a.ne), 'CPY', a);
}

export function pad(a: Tensor, p0: number): Tensor {
  return op(newTensor(a.type, [a.ne[0] + p0, a.ne[1], a.ne[2], a.ne[3]]), 'PAD', a);
}

/** ggml_concat: a and b (same type) joined along `dim`, contiguous. */
export function concat(a: Tensor, b: Tensor, dim: number): Tensor {
  const ne: Ne = [...a.ne] as Ne;
  ne[dim] = a.ne[dim]! + b.ne[dim]!;
  return op(newTensor(a.type, ne), 'CONCAT', a, b);
}

export function sumRows(a: Tensor): Tensor {
  return op(newTensor(a.type, [1, a.ne[1], a.ne[2], a.ne[3]]), 'SUM_ROWS', a);
}

/** ggml_argsort_top_k: an I32 argsort of the whole row, then a view of the first k. */
export function argsortTopK(a: Tensor, k: number): Tensor {
  const sorted = op(newTensor(I32, a.ne), 'ARGSORT', a);
  return view(sorted, [k, sorted.ne[1], sorted.ne[2], sorted.ne[3]], [sorted.nb[1], sorted.nb[2], sorted.nb[3]]);
}

/** ggml_flash_attn_ext: F32 result [D_v, n_head, n_tokens, n_stream]. */
export function flashAttnExt(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | undefined, kvMax: number, sinks?: Tensor): Tensor {
  // ggml_flash_attn_ext_add_sinks: src[4]
  const t = op(newTensor(F32, [v.ne[0], q.ne[2], q.ne[1], q.ne[3]]), 'FLASH_ATTN_EXT', q, k, v, mask, sinks);
  t.faKvMax = kvMax;
  return t;
}

export function setInput(t: Tensor): Tensor {
  t.flags |= FLAG_INPUT;
  return t;
}

/** A tensor living in a buffer of its own (a weight or a KV cache tensor) on `device`. */
export function external(type: GgmlTypeInfo, ne: readonly number[], device: number, isWeight: boolean): Tensor {
  const t = newTensor(type, ne);
  t.buffer = device;
  t.isWeight = isWeight;
  return t;
}

/**
 * A computation graph in ggml's node order: ggml_build_forward_expand visits sources depth
 * first, left to right, and appends each tensor after its sources; tensors without an op are
 * leafs.
 */
export class Graph {
  private static stamps = 0;
  readonly nodes: Tensor[] = [];
  readonly leafs: Tensor[] = [];
  /** Marks the tensors this graph visited (a field on the tensor, not a set: expand runs for every node). */
  private readonly stamp = ++Graph.stamps;

  expand(t: Tensor): void {
    // Iterative post-order walk, equivalent to the recursive ggml_visit_parents_graph.
    const stamp = this.stamp;
    if (t.visitedBy === stamp) return;
    const stack: { t: Tensor; i: number }[] = [{ t, i: 0 }];
    t.visitedBy = stamp;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.i < top.t.src.length) {
        const s = top.t.src[top.i++]!;
        if (s.visitedBy !== stamp) {
          s.visitedBy = stamp;
          stack.push({ t: s, i: 0 });
        }
        continue;
      }
      stack.pop();
      if (top.t.op === 'NONE') this.leafs.push(top.t);
      else this.nodes.push(top.t);
    }
  }
}
