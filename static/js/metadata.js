// Removes metadata from JPEG and PNG files without re-encoding them.
//
// Re-encoding through a canvas would also drop metadata, but Tor Browser blocks reading canvas
// pixels (it returns a blank image to defeat fingerprinting), and re-compression loses detail
// that may matter as evidence. So we copy the image data as it is and leave out every segment or
// chunk that can carry metadata: EXIF (with GPS position), XMP, IPTC, comments, text chunks,
// thumbnails. What is kept is only what decoding needs.

/** @returns {Uint8Array|null} the stripped JPEG, or null if the file is not a well-formed JPEG. */
export function stripJpeg(b) {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  const out = [b.subarray(0, 2)];
  let i = 2;
  while (i + 1 < b.length) {
    if (b[i] !== 0xff) return null;
    const m = b[i + 1];
    if (m === 0xff) { i += 1; continue; } // fill byte
    if (m === 0xd9) { out.push(b.subarray(i, i + 2)); return concat(out); } // end of image
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) { out.push(b.subarray(i, i + 2)); i += 2; continue; }
    if (i + 4 > b.length) return null;
    const len = (b[i + 2] << 8) | b[i + 3];
    if (len < 2 || i + 2 + len > b.length) return null;
    // APP0..APP13 and APP15 (JFIF thumbnails, EXIF/GPS, XMP, ICC names, IPTC…) and comments go;
    // APP14 (Adobe colour transform) stays because decoding can depend on it.
    const drop = (m >= 0xe0 && m <= 0xef && m !== 0xee) || m === 0xfe;
    if (!drop) out.push(b.subarray(i, i + 2 + len));
    i += 2 + len;
    if (m === 0xda) {
      // Entropy-coded data follows the scan header: copy it up to the next real marker.
      const start = i;
      while (i + 1 < b.length && !(b[i] === 0xff && b[i + 1] !== 0x00 && !(b[i + 1] >= 0xd0 && b[i + 1] <= 0xd7))) i += 1;
      if (i + 1 >= b.length) return null;
      out.push(b.subarray(start, i));
    }
  }
  return null;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// Chunks needed to decode (and animate) a PNG; everything else, text and EXIF included, goes.
const PNG_KEEP = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS', 'gAMA', 'cHRM', 'sRGB', 'sBIT', 'bKGD', 'acTL', 'fcTL', 'fdAT']);

/** @returns {Uint8Array|null} the stripped PNG, or null if the file is not a well-formed PNG. */
export function stripPng(b) {
  if (b.length < 8 || PNG_SIGNATURE.some((v, k) => b[k] !== v)) return null;
  const out = [b.subarray(0, 8)];
  let i = 8;
  while (i + 12 <= b.length) {
    const len = ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
    const type = String.fromCharCode(b[i + 4], b[i + 5], b[i + 6], b[i + 7]);
    const end = i + 12 + len;
    if (end > b.length) return null;
    if (PNG_KEEP.has(type)) out.push(b.subarray(i, end));
    i = end;
    if (type === 'IEND') return concat(out);
  }
  return null;
}

function concat(parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/**
 * Prepares a file for attachment. Returns { bytes, stripped, warning }: JPEG and PNG come back
 * without metadata (stripped = true); other files unchanged, with warning = true.
 */
export async function prepareFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const type = (file.type || '').toLowerCase();
  const name = (file.name || '').toLowerCase();
  const isJpeg = type === 'image/jpeg' || /\.(jpe?g)$/.test(name);
  const isPng = type === 'image/png' || /\.png$/.test(name);
  const stripped = isJpeg ? stripJpeg(bytes) : isPng ? stripPng(bytes) : null;
  if (stripped) return { bytes: stripped, stripped: true, warning: false };
  return { bytes, stripped: false, warning: true };
}
