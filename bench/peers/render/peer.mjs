// The render peers bench_render and bench/render_bulk.sh run beside avatarq,
// in the same run on the same machine:
//   node peer.mjs rate PEER SIZE SECONDS      -> "rate N/s bytes B" (one core, after warm-up)
//   node peer.mjs files PEER SIZE SEEDS DIR   -> DIR/N.png for each seed line (whole process)
// PEER: jdenticon | dicebear-fun-emoji | dicebear-initials. DiceBear's PNG goes
// through @dicebear/converter (resvg) with its fonts given, the tuned path (no
// system font scan per picture), at the requested size.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const jdenticon = createRequire(import.meta.url)('jdenticon');
import { createAvatar } from '@dicebear/core';
import { funEmoji, initials } from '@dicebear/collection';
import { toPng } from '@dicebear/converter';

const FONT = '/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf';

const peers = {
  jdenticon: async (seed, size) => jdenticon.toPng(seed, size),
  'dicebear-fun-emoji': async (seed, size) =>
    Buffer.from(await toPng(createAvatar(funEmoji, { seed, size }).toString(), { size, fonts: [] }).toArrayBuffer()),
  'dicebear-initials': async (seed, size) =>
    Buffer.from(await toPng(createAvatar(initials, { seed, size }).toString(), { size, fonts: [FONT] }).toArrayBuffer()),
};

const [mode, name, sizeArg, a, b] = process.argv.slice(2);
const draw = peers[name];
const size = Number(sizeArg);
if (!draw || !(size > 0) || !['rate', 'files'].includes(mode)) {
  console.error('usage: node peer.mjs rate|files jdenticon|dicebear-fun-emoji|dicebear-initials SIZE ...');
  process.exit(2);
}

if (mode === 'rate') {
  const seconds = Number(a) > 0 ? Number(a) : 1;
  for (let i = 0; i < 50; i++) await draw(`warm-${i}`, size);
  let n = 0, bytes = 0;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (;;) {
    const png = await draw(`user-${n}`, size);
    bytes += png.length;
    n++;
    const cpu = process.cpuUsage(cpu0);
    if ((cpu.user + cpu.system) / 1e6 >= seconds || Number(process.hrtime.bigint() - t0) / 1e9 > 4 * seconds)
      break;
  }
  // CPU time of this process (the C bench measures its own CPU time too);
  // resvg may use helper threads, which this counts as well
  const cpu = process.cpuUsage(cpu0);
  console.log(`rate ${(n / ((cpu.user + cpu.system) / 1e6)).toFixed(1)} bytes ${Math.round(bytes / n)}`);
} else {
  const seeds = readFileSync(a, 'utf8').split('\n').filter((s) => s.length > 0);
  mkdirSync(b, { recursive: true });
  for (let i = 0; i < seeds.length; i++) writeFileSync(`${b}/${i}.png`, await draw(seeds[i], size));
}
