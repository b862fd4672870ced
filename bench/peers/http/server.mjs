// The DiceBear peer of bench/bench_http.c: GET /identicon/{seed}.png?size=N
// answers an identicon PNG rendered by @dicebear/core + @dicebear/collection
// and converted by @dicebear/converter, behind node's own http server.
// Tuned as /work/shared/NOTES.md says: toPng gets `fonts` (otherwise its
// renderer rescans every system font per request) and `size` (otherwise it
// renders 512 px).
//   node server.mjs PORT FONT.ttf
import http from 'node:http';
import { createAvatar } from '@dicebear/core';
import { identicon } from '@dicebear/collection';
import { toPng } from '@dicebear/converter';

const port = Number(process.argv[2]);
const fonts = [process.argv[3]];

http.createServer(async (req, res) => {
  const m = /^\/identicon\/([^/?]+)\.png(?:\?size=(\d+))?$/.exec(req.url);
  if (!m) {
    res.writeHead(404, { 'Content-Length': 0 });
    res.end();
    return;
  }
  const seed = decodeURIComponent(m[1]);
  const size = Number(m[2] || 256);
  try {
    const svg = createAvatar(identicon, { seed, size });
    const png = Buffer.from(await toPng(svg, { size, fonts }).toArrayBuffer());
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length });
    res.end(png);
  } catch (e) {
    const msg = String(e);
    res.writeHead(500, { 'Content-Length': Buffer.byteLength(msg) });
    res.end(msg);
  }
}).listen(port, '127.0.0.1', () => console.log(`dicebear peer on ${port}`));
