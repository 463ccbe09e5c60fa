/**
 * ggml's graph allocator, ported from ggml/src/ggml-alloc.c (ggml_dyn_tallocr_* and
 * ggml_gallocr_alloc_graph_impl) for measuring only: it walks a graph in node order, places each
 * tensor in its backend's buffer with the same best-fit free-block policy, reuses a parent's
 * memory in place where ggml does, frees tensors after their last reader, and reports the high
 * water mark of every buffer. That high water mark is the compute buffer size llama.cpp reserves
 * (ggml_gallocr_reserve_n_size), so matching the policy matters: the peak depends on which
 * tensors happen to be alive together and on fragmentation, not on a sum of sizes.
 */

import type { Graph, Tensor } from './ggml.js';
import { FLAG_INPUT, FLAG_OUTPUT, sameLayout } from './ggml.js';

/** How one buffer type sizes and aligns tensors. */
export interface BufferKind {
  readonly alignment: number;
  /** ggml_backend_buft_get_alloc_size */
  allocSize(t: Tensor): number;
}

interface FreeBlock {
  offset: number;
  size: number;
}

interface Chunk {
  blocks: FreeBlock[];
  maxSize: number;
}

const MAX_CHUNKS = 16; // GGML_VBUFFER_MAX_CHUNKS

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** ggml_dyn_tallocr: a set of chunks with sorted free lists. */
class DynAllocator {
  private chunks: Chunk[] = [];

  constructor(private readonly alignment: number, private readonly maxChunkSize = Number.MAX_SAFE_INTEGER / 2) {}

  size(): number {
    return this.chunks.reduce((s, c) => s + c.maxSize, 0);
  }

  private newChunk(minSize: number): number {
    if (this.chunks.length >= MAX_CHUNKS) return -1;
    const size = this.chunks.length === MAX_CHUNKS - 1 ? Number.MAX_SAFE_INTEGER / 2 : Math.max(minSize, this.maxChunkSize);
    this.chunks.push({ blocks: [{ offset: 0, size }], maxSize: 0 });
    return this.chunks.length - 1;
  }

  alloc(sizeIn: number): { chunk: number; offset: number } {
    const size = alignUp(sizeIn, this.alignment);
    let bestChunk = -1;
    let bestBlock = -1;
    // best fit among all blocks but the last of each chunk
    for (let c = 0; c < this.chunks.length; c++) {
      const blocks = this.chunks[c]!.blocks;
      let bestSize = Infinity;
      for (let i = 0; i < blocks.length - 1; i++) {
        const b = blocks[i]!;
        if (b.size >= size && b.size <= bestSize) {
          bestChunk = c;
          bestBlock = i;
          bestSize = b.size;
        }
      }
    }
    if (bestBlock === -1) {
      // the last block of a chunk, preferring the one that grows the chunk least
      let bestReuse = -Infinity;
      for (let c = 0; c < this.chunks.length; c++) {
        const chunk = this.chunks[c]!;
        if (chunk.blocks.length === 0) continue;
        const b = chunk.blocks[chunk.blocks.length - 1]!;
        const reuse = chunk.maxSize - b.offset - size;
        const betterReuse = bestReuse < 0 && reuse > bestReuse;
        const betterFit = reuse >= 0 && reuse < bestReuse;
        if (b.size >= size && (betterReuse || betterFit)) {
          bestChunk = c;
          bestBlock = chunk.blocks.length - 1;
          bestReuse = reuse;
        }
      }
    }
    if (bestBlock === -1) {
      bestChunk = this.newChunk(size);
      bestBlock = 0;
      if (bestChunk === -1) throw new Error('graph allocation: out of chunks');
    }
    const chunk = this.chunks[bestChunk]!;
    const block = chunk.blocks[bestBlock]!;
    const offset = block.offset;
    block.offset += size;
    block.size -= size;
    if (block.size === 0) chunk.blocks.splice(bestBlock, 1);
    chunk.maxSize = Math.max(chunk.maxSize, offset + size);
    return { chunk: bestChunk, offset };
  }

  free(chunkIndex: number, offset: number, sizeIn: number): void {
    const size = alignUp(sizeIn, this.alignment);
    const blocks = this.chunks[chunkIndex]!.blocks;
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (b.offset + b.size === offset) {
        b.size += size;
        const next = blocks[i + 1];
        if (next && b.offset + b.size === next.offset) {
          b.size += next.size;
          blocks.splice(i + 1, 1);
        }
        return;
      }
      if (offset + size === b.offset) {
        b.offset = offset;
        b.size += size;
        const prev = blocks[i - 1];
        if (prev && prev.offset + prev.size === b.offset) {
          prev.size += b.size;
          blocks.splice(i, 1);
        }
        return;
      }
    }
    let at = 0;
    while (at < blocks.length && blocks[at]!.offset < offset) at++;
    blocks.splice(at, 0, { offset, size });
  }
}

/**
 * Runs ggml_gallocr_alloc_graph_impl over `graph` with `kinds[i]` describing buffer i, the buffer
 * of each node/leaf being its `backend` (0 when unset). Returns the size of each buffer.
 */
export function measureGraph(graph: Graph, kinds: readonly BufferKind[]): number[] {
  const allocs = kinds.map((k) => new DynAllocator(k.alignment));
  const bufferOf = (t: Tensor): number => (t.backend >= 0 ? t.backend : 0);

  for (const t of graph.leafs) resetState(t);
  for (const t of graph.nodes) {
    resetState(t);
    for (const s of t.src) resetState(s);
    if (t.viewSrc) resetState(t.viewSrc);
  }

  const isOwn = (t: Tensor): boolean => t.allocated;
  const isAllocated = (t: Tensor): boolean => t.buffer !== undefined || t.allocated;

  const freeExtra = (node: Tensor, parent: Tensor): void => {
    const a = kinds[parent.bufferId]!;
    const parentSize = alignUp(a.allocSize(parent), a.alignment);
    const nodeSize = alignUp(kinds[node.bufferId]!.allocSize(node), a.alignment);
    if (parentSize > nodeSize) allocs[parent.bufferId]!.free(parent.addrChunk, parent.addrOffset + nodeSize, parentSize - nodeSize);
  };

  const allocate = (node: Tensor, bufferId: number): void => {
    if (isAllocated(node) || node.isView) return;
    node.allocated = true;
    if (node.canInplace) {
      for (const parent of node.src) {
        if (!isOwn(parent)) continue;
        if (parent.flags & FLAG_OUTPUT || (parent.viewSrc && parent.viewSrc.flags & FLAG_OUTPUT)) continue;
        if (!sameLayout(node, parent)) continue;
        if (parent.nChildren !== 1 || parent.nViews !== 0) continue;
        if (parent.viewSrc) {
          const vs = parent.viewSrc;
          // ggml also requires view_src->data == parent->data; during a reserve no tensor has data
          // yet, so that test always passes.
          if (vs.nViews === 1 && vs.nChildren === 0) {
            node.bufferId = parent.bufferId;
            node.addrChunk = parent.addrChunk;
            node.addrOffset = parent.addrOffset;
            parent.allocated = false;
            vs.allocated = false;
            freeExtra(node, vs);
            return;
          }
        } else {
          node.bufferId = parent.bufferId;
          node.addrChunk = parent.addrChunk;
          node.addrOffset = parent.addrOffset;
          parent.allocated = false;
          freeExtra(node, parent);
          return;
        }
      }
    }
    const addr = allocs[bufferId]!.alloc(kinds[bufferId]!.allocSize(node));
    node.bufferId = bufferId;
    node.addrChunk = addr.chunk;
    node.addrOffset = addr.offset;
  };

  const freeNode = (node: Tensor): void => {
    if (node.flags & FLAG_OUTPUT) return;
    allocs[node.bufferId]!.free(node.addrChunk, node.addrOffset, kinds[node.bufferId]!.allocSize(node));
    node.allocated = false;
  };

  for (const leaf of graph.leafs) allocate(leaf, bufferOf(leaf));

  for (const node of graph.nodes) {
    if (node.isView && node.op !== 'NONE') node.viewSrc!.nViews += 1;
    if (node.flags & FLAG_INPUT) allocate(node, bufferOf(node));
    for (const s of node.src) {
      s.nChildren += 1;
      if (s.flags & FLAG_INPUT) allocate(s, bufferOf(node));
    }
  }

  for (const node of graph.nodes) {
    const bufferId = bufferOf(node);
    for (const parent of node.src) allocate(parent, bufferId);
    allocate(node, bufferId);
    for (const parent of node.src) {
      parent.nChildren -= 1;
      if (parent.nChildren === 0 && parent.nViews === 0) {
        if (parent.viewSrc) {
          const vs = parent.viewSrc;
          vs.nViews -= 1;
          if (vs.nViews === 0 && vs.nChildren === 0 && vs.allocated) freeNode(vs);
        } else if (parent.allocated) {
          freeNode(parent);
        }
      }
    }
  }

  return allocs.map((a) => a.size());
}

function resetState(t: Tensor): void {
  t.nChildren = 0;
  t.nViews = 0;
  t.allocated = false;
  t.bufferId = 0;
  t.addrChunk = 0;
  t.addrOffset = 0;
}
