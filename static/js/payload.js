// Payload v1 in the browser: the same ustar layout and Padmé padding as src/payload/write.rs
// (specified in docs/payload-v1.md), so the review tool's strict reader accepts it.

const BLOCK = 512;
export const MIN_PADDED = 32 * 1024;

/** Padmé length (Nikitin et al. 2019), rounded up to tar blocks, at least MIN_PADDED. */
export function paddedLength(len) {
  let padme = len;
  if (len >= 2) {
    const e = floorLog2(len);
    const s = floorLog2(e) + 1;
    const unit = 2 ** (e - s);
    padme = Math.ceil(len / unit) * unit;
  }
  return Math.max(MIN_PADDED, Math.ceil(padme / BLOCK) * BLOCK);
}

/** floor(log2(n)) for a positive integer, exactly (no floating-point rounding). */
function floorLog2(n) {
  let e = 0;
  while (2 ** (e + 1) <= n) e += 1;
  return e;
}

function roundBlock(n) {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function putOctal(header, offset, width, value) {
  const digits = value.toString(8).padStart(width - 1, '0');
  for (let i = 0; i < width - 1; i++) header[offset + i] = digits.charCodeAt(i);
  header[offset + width - 1] = 0;
}

/** A ustar header for a regular file, mode 0600, no time, no owner. */
function tarHeader(name, size) {
  const header = new Uint8Array(BLOCK);
  // Short ASCII names only, as src/tarfmt.rs writes and reads them.
  if (!/^[\x20-\x7e]{1,99}$/.test(name)) throw new Error(`tar entry name ${JSON.stringify(name)} is not a short ASCII name`);
  const encoded = new TextEncoder().encode(name);
  header.set(encoded, 0);
  putOctal(header, 100, 8, 0o600);
  putOctal(header, 108, 8, 0);
  putOctal(header, 116, 8, 0);
  putOctal(header, 124, 12, size);
  putOctal(header, 136, 12, 0);
  header.fill(0x20, 148, 156); // checksum field counts as spaces
  header[156] = 0x30; // regular file
  header.set(new TextEncoder().encode('ustar\0'), 257);
  header.set(new TextEncoder().encode('00'), 263);
  let sum = 0;
  for (const b of header) sum += b;
  putOctal(header, 148, 7, sum);
  header[155] = 0x20;
  return header;
}

/**
 * The payload's layout, in order: tar headers and zero runs as bytes, and each entry's content as
 * given (`{ bytes }` or `{ blob, size }`), for buildPayload and payloadStream alike. Returns
 * { total, parts }.
 */
function layout(report, files) {
  const json = new TextEncoder().encode(JSON.stringify(report));
  const entries = [{ name: 'report.json', size: json.length, content: { bytes: json } },
    ...files.map((f) => ({ name: f.path, size: f.bytes ? f.bytes.length : f.size, content: f }))];
  const unpadded = entries.reduce((n, e) => n + BLOCK + roundBlock(e.size), 0) + BLOCK + 2 * BLOCK;
  const total = paddedLength(unpadded);
  const padding = total - unpadded;
  const parts = [];
  for (const e of entries) {
    parts.push({ bytes: tarHeader(e.name, e.size) }, e.bytes ? { bytes: e.bytes } : e.content);
    if (roundBlock(e.size) > e.size) parts.push({ zeros: roundBlock(e.size) - e.size });
  }
  // The padding entry, its zero content and the two end-of-archive blocks.
  parts.push({ bytes: tarHeader('padding', padding) }, { zeros: padding + 2 * BLOCK });
  return { total, parts };
}

/**
 * Builds the payload: report.json, the attachments (already ordered as in the report), and the
 * padding entry. `files` is [{ path, bytes }]. Returns one Uint8Array.
 */
export function buildPayload(report, files) {
  const { total, parts } = layout(report, files);
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    if (part.bytes) out.set(part.bytes, at);
    at += part.bytes ? part.bytes.length : part.zeros;
  }
  // The zero runs are zero already.
  return out;
}

/** Pieces of a stream are gathered to about this size before they go on (fewer, larger chunks
 * for the encryption), and files are read in pieces of this size. */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * The same bytes as buildPayload, as a ReadableStream of Uint8Array chunks of about
 * STREAM_CHUNK, without ever holding the whole: each attachment is `{ path, bytes }` (a cleaned
 * image, in memory) or `{ path, blob, size }` (read a piece at a time). A file whose size is not
 * `size` any more (changed since it was chosen) errors the stream. Returns { stream, length }.
 */
export function payloadStream(report, files, chunk = STREAM_CHUNK) {
  const { total, parts } = layout(report, files);
  async function* pieces() {
    for (const part of parts) {
      if (part.bytes) {
        yield part.bytes;
      } else if (part.zeros !== undefined) {
        for (let left = part.zeros; left > 0; left -= chunk) yield new Uint8Array(Math.min(chunk, left));
      } else {
        for (let at = 0; at < part.size; at += chunk) {
          const want = Math.min(chunk, part.size - at);
          const piece = new Uint8Array(await part.blob.slice(at, at + want).arrayBuffer());
          if (piece.length !== want) throw Object.assign(new Error('file changed'), { code: 'file_changed' });
          yield piece;
        }
      }
    }
  }
  const source = pieces();
  let pending = [];
  let pendingBytes = 0;
  const take = () => {
    const joined = pending.length === 1 ? pending[0] : new Uint8Array(pendingBytes);
    if (pending.length > 1) {
      let at = 0;
      for (const p of pending) { joined.set(p, at); at += p.length; }
    }
    pending = [];
    pendingBytes = 0;
    return joined;
  };
  const stream = new ReadableStream({
    async pull(controller) {
      for (;;) {
        const { value, done } = await source.next();
        if (done) {
          if (pendingBytes) controller.enqueue(take());
          controller.close();
          return;
        }
        // Small pieces (headers, block padding) join the next ones; large ones go as they are.
        if (value.length >= chunk / 4) {
          if (pendingBytes) controller.enqueue(take());
          controller.enqueue(value);
          return;
        }
        pending.push(value);
        pendingBytes += value.length;
        if (pendingBytes >= chunk / 4) {
          controller.enqueue(take());
          return;
        }
      }
    },
    cancel(reason) {
      return source.return(reason);
    },
  }, { highWaterMark: 0 });
  return { stream, length: total };
}

/** A field id: 1 to 64 of a-z, 0-9 and _ (as is_valid_field_id in src/payload/mod.rs). */
export function isValidFieldId(id) {
  return /^[a-z0-9_]{1,64}$/.test(id);
}

/** The archive entry name for attachment `index` (0-based), like attachment_path() in Rust. */
export function attachmentPath(index, originalName) {
  const number = String(index + 1).padStart(3, '0');
  const dot = originalName.lastIndexOf('.');
  const ext = dot >= 0 ? originalName.slice(dot + 1).toLowerCase() : '';
  return /^[a-z0-9]{1,8}$/.test(ext) ? `files/${number}.${ext}` : `files/${number}`;
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Files up to this size are hashed by the browser in one piece; larger ones a piece at a time
 * (WebCrypto has no incremental digest), so a video never sits whole in memory. */
export const WHOLE_HASH_LIMIT = 16 * 1024 * 1024;

/** The SHA-256 of a Blob or File, as hex, reading at most STREAM_CHUNK at a time when large. */
export async function sha256HexOfBlob(blob) {
  if (blob.size <= WHOLE_HASH_LIMIT) return sha256Hex(new Uint8Array(await blob.arrayBuffer()));
  const hash = new Sha256();
  for (let at = 0; at < blob.size; at += STREAM_CHUNK) {
    const want = Math.min(STREAM_CHUNK, blob.size - at);
    const piece = new Uint8Array(await blob.slice(at, at + want).arrayBuffer());
    if (piece.length !== want) throw Object.assign(new Error('file changed'), { code: 'file_changed' });
    hash.update(piece);
  }
  return Array.from(hash.digest(), (b) => b.toString(16).padStart(2, '0')).join('');
}

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 (FIPS 180-4), incremental, for files too large to hash in one piece. */
export class Sha256 {
  constructor() {
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
    this.block = new Uint8Array(64);
    this.filled = 0;
    this.length = 0;
  }

  update(bytes) {
    this.length += bytes.length;
    let at = 0;
    if (this.filled) {
      const n = Math.min(64 - this.filled, bytes.length);
      this.block.set(bytes.subarray(0, n), this.filled);
      this.filled += n;
      at = n;
      if (this.filled < 64) return;
      this.compress(this.block, 0);
      this.filled = 0;
    }
    for (; at + 64 <= bytes.length; at += 64) this.compress(bytes, at);
    if (at < bytes.length) {
      this.block.set(bytes.subarray(at), 0);
      this.filled = bytes.length - at;
    }
  }

  digest() {
    const bits = this.length * 8;
    const tail = new Uint8Array(((this.filled + 8) >> 6) * 64 + 64 - this.filled);
    tail[0] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(tail.length - 4, bits >>> 0);
    this.update(tail);
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setInt32(4 * i, this.h[i]);
    return out;
  }

  compress(bytes, at) {
    const w = this.w;
    for (let i = 0; i < 16; i++, at += 4) {
      w[i] = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const h = this.h;
    let a = h[0]; let b = h[1]; let c = h[2]; let d = h[3];
    let e = h[4]; let f = h[5]; let g = h[6]; let k = h[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
  }
}
