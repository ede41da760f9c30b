// Solves the gateway's proof-of-work challenge off the page's main thread: finds a counter such
// that SHA-256(challenge ‖ counter as 8 big-endian bytes) starts with `difficulty` zero bits.
// Uses the browser's own SHA-256 (WebCrypto), in batches to keep it busy.

const BATCH = 512;

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const b of bytes) {
    if (b === 0) { bits += 8; continue; }
    return bits + Math.clz32(b) - 24;
  }
  return bits;
}

self.addEventListener('message', async (event) => {
  const { challenge, difficulty } = event.data;
  const token = new Uint8Array(challenge.match(/../g).map((h) => parseInt(h, 16)));
  let counter = 0;
  for (;;) {
    const inputs = [];
    for (let i = 0; i < BATCH; i++) {
      const input = new Uint8Array(token.length + 8);
      input.set(token);
      new DataView(input.buffer).setBigUint64(token.length, BigInt(counter + i));
      inputs.push(crypto.subtle.digest('SHA-256', input));
    }
    const hashes = await Promise.all(inputs);
    for (let i = 0; i < BATCH; i++) {
      if (leadingZeroBits(new Uint8Array(hashes[i])) >= difficulty) {
        self.postMessage({ solution: `${challenge}.${counter + i}` });
        return;
      }
    }
    counter += BATCH;
    self.postMessage({ tried: counter });
  }
});
