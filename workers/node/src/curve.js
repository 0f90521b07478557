// ZeroMQ CURVE keys as jobcast writes them (`jobcast keygen`): a key file holds
// one Z85-encoded key (40 characters) on a line; lines starting with '#' are
// comments. A worker needs the broker's public key (inline or its .pub file)
// and its own secret key file; its public key is derived from the secret.

import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Map([...Z85].map((c, i) => [c, i]));

/** @param {string} text 40 Z85 characters @returns {Buffer|undefined} 32 bytes */
export function z85Decode(text) {
  if (typeof text !== 'string' || text.length % 5 !== 0) return undefined;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = Z85_VALUE.get(text[i + j]);
      if (digit === undefined) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return undefined;
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}

/** @param {Uint8Array} bytes a multiple of 4 bytes @returns {string} */
export function z85Encode(bytes) {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < view.length; i += 4) {
    let value = view.readUInt32BE(i);
    let chunk = '';
    for (let j = 0; j < 5; j++) {
      chunk = Z85[value % 85] + chunk;
      value = Math.floor(value / 85);
    }
    out += chunk;
  }
  return out;
}

export function isZ85Key(text) {
  return typeof text === 'string' && text.length === 40 && z85Decode(text) !== undefined;
}

/** The first key in a key file; throws naming the file and the problem. */
export function readKey(path) {
  const lines = readFileSync(path, 'utf8').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!isZ85Key(line)) throw new Error(`'${path}': not a Z85 CURVE key (40 characters): '${line.slice(0, 48)}'`);
    return line;
  }
  throw new Error(`'${path}' holds no CURVE key`);
}

/** A Z85 key given inline, or the first key of the file it names. */
export function keyOrFile(value) {
  return isZ85Key(value) ? value : readKey(value);
}

// PKCS#8 DER header of an X25519 private key; the 32 key bytes follow.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The Z85 public key of a Z85 CURVE secret key (X25519). */
export function publicKeyOf(secret) {
  const bytes = z85Decode(secret);
  if (!bytes || bytes.length !== 32) throw new Error('not a Z85 CURVE secret key');
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, bytes]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return z85Encode(Buffer.from(jwk.x, 'base64url'));
}
