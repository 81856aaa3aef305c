// A small ZIP reader and writer for the tests (stored or deflated entries, no ZIP64), so the
// suite can inspect `pulsebase export` output and hand-make Convex-format exports without an
// extra package. Uses node:zlib for deflate and CRC-32.

import { crc32, deflateRawSync, inflateRawSync } from "node:zlib";
import { readFileSync } from "node:fs";

/** Reads a ZIP file into a Map of entry name -> Buffer. */
export function readZip(path) {
  const buf = readFileSync(path);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65_557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${path}: no end of central directory`);
  let count = buf.readUInt16LE(eocd + 10);
  let offset = buf.readUInt32LE(eocd + 16);
  if (offset === 0xffffffff || count === 0xffff) {
    // ZIP64: the locator sits just before the end record.
    const z64 = Number(buf.readBigUInt64LE(eocd - 20 + 8));
    count = Number(buf.readBigUInt64LE(z64 + 32));
    offset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  const entries = new Map();
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(offset) !== 0x02014b50) throw new Error("bad central directory");
    const method = buf.readUInt16LE(offset + 10);
    let compressed = buf.readUInt32LE(offset + 20);
    let local = buf.readUInt32LE(offset + 42);
    const nameLen = buf.readUInt16LE(offset + 28);
    const extraLen = buf.readUInt16LE(offset + 30);
    const commentLen = buf.readUInt16LE(offset + 32);
    const name = buf.subarray(offset + 46, offset + 46 + nameLen).toString("utf8");
    // ZIP64 extra field: sizes and offset that did not fit.
    let extra = offset + 46 + nameLen;
    const extraEnd = extra + extraLen;
    while (extra < extraEnd) {
      const id = buf.readUInt16LE(extra);
      const size = buf.readUInt16LE(extra + 2);
      if (id === 0x0001) {
        let p = extra + 4;
        if (buf.readUInt32LE(offset + 24) === 0xffffffff) p += 8;
        if (compressed === 0xffffffff) {
          compressed = Number(buf.readBigUInt64LE(p));
          p += 8;
        }
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(p));
      }
      extra += 4 + size;
    }
    const localName = buf.readUInt16LE(local + 26);
    const localExtra = buf.readUInt16LE(local + 28);
    const start = local + 30 + localName + localExtra;
    const data = buf.subarray(start, start + compressed);
    entries.set(name, method === 8 ? inflateRawSync(data) : Buffer.from(data));
    offset += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** A ZIP (deflated entries) holding `files`: {name: string | Buffer}. */
export function writeZip(files) {
  const locals = [];
  const central = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const packed = deflateRawSync(data);
    const nameBuf = Buffer.from(name);
    const crc = crc32(data);
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(8, 8);
    header.writeUInt32LE(crc, 14);
    header.writeUInt32LE(packed.length, 18);
    header.writeUInt32LE(data.length, 22);
    header.writeUInt16LE(nameBuf.length, 26);
    locals.push(header, nameBuf, packed);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(8, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(nameBuf.length, 28);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, nameBuf);
    offset += 30 + nameBuf.length + packed.length;
  }
  const centralBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(centralBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralBuf, end]);
}

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** A document id in Convex's format (varint table number, 16 bytes, Fletcher-16 footer). */
export function convexId(tableNumber, seed) {
  const bytes = [];
  let n = tableNumber;
  for (;;) {
    if (n < 0x80) {
      bytes.push(n);
      break;
    }
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  for (let i = 0; i < 16; i++) bytes.push((seed * 31 + i * 17 + 7) & 0xff);
  let a = 0;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 255;
    b = (b + a) % 255;
  }
  const sum = (b << 8) | a;
  bytes.push(sum & 0xff, sum >> 8);
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** The JSON lines of a `documents.jsonl` entry. */
export function jsonLines(buffer) {
  return buffer
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}
