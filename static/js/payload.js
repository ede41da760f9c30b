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
 * Builds the payload: report.json, the attachments (already ordered as in the report), and the
 * padding entry. `files` is [{ path, bytes }]. Returns one Uint8Array.
 */
export function buildPayload(report, files) {
  const json = new TextEncoder().encode(JSON.stringify(report));
  const entries = [{ name: 'report.json', bytes: json }, ...files.map((f) => ({ name: f.path, bytes: f.bytes }))];
  const unpadded = entries.reduce((n, e) => n + BLOCK + roundBlock(e.bytes.length), 0) + BLOCK + 2 * BLOCK;
  const total = paddedLength(unpadded);
  const padding = total - unpadded;
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of [...entries, { name: 'padding', bytes: null, size: padding }]) {
    const size = e.bytes ? e.bytes.length : e.size;
    out.set(tarHeader(e.name, size), at);
    at += BLOCK;
    if (e.bytes) out.set(e.bytes, at);
    at += roundBlock(size);
  }
  // The rest (padding content and the two end-of-archive blocks) is already zero.
  return out;
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
