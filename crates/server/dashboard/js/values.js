// Convex JSON: decoding what the server sends ({"$integer": base64}, {"$bytes": base64},
// {"$float": base64} for NaN/Infinity) into JS values, encoding JS values back, and showing
// them as text.

function b64ToBytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToB64(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$integer") {
      return new DataView(b64ToBytes(v.$integer).buffer).getBigInt64(0, true);
    }
    if (keys.length === 1 && keys[0] === "$bytes") return b64ToBytes(v.$bytes).buffer;
    if (keys.length === 1 && keys[0] === "$float") {
      return new DataView(b64ToBytes(v.$float).buffer).getFloat64(0, true);
    }
    const out = {};
    for (const k of keys) out[k] = decode(v[k]);
    return out;
  }
  return v;
}

export function encode(v) {
  if (typeof v === "bigint") {
    const view = new DataView(new ArrayBuffer(8));
    view.setBigInt64(0, v, true);
    return { $integer: bytesToB64(new Uint8Array(view.buffer)) };
  }
  if (v instanceof ArrayBuffer) return { $bytes: bytesToB64(new Uint8Array(v)) };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = encode(x);
    return out;
  }
  return v;
}

/** JSON text for the editor: int64 as `123n` would not parse, so it is {"$integer": "..."}. */
export function toEditorText(doc) {
  return JSON.stringify(encode(doc), null, 2);
}

/** One-line display of a value in a table cell. */
export function short(v) {
  if (v === null) return "null";
  if (v === undefined) return "";
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return v;
  if (v instanceof ArrayBuffer) return `bytes(${v.byteLength})`;
  return JSON.stringify(encode(v));
}
