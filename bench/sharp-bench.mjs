// sharp-bench.mjs: the sharp side of `rendition-bench` (benchmark/src/external.rs runs it).
//
//   node bench/sharp-bench.mjs SHARP_DIR SET CONCURRENCY ITERATIONS FILE...
//
// SHARP_DIR is where `npm install sharp` was run (scripts/bench.sh uses
// ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp); SET is `one` (w=300 JPEG q80) or
// `eager10` (widths 2048/1024/640/320/160, each as JPEG q80 and WebP q75) or `eager5`
// (the same widths, WebP q75 only). Every variant is its own sharp pipeline from the
// source buffer (decode, resize, encode), as an on-demand service renders each request.
// All files are read into memory first; outputs go to memory (toBuffer). sharp's
// operation cache is off and libvips runs one thread per pipeline (sharp.concurrency(1));
// CONCURRENCY pipelines run at once. One untimed warm-up pass, then ITERATIONS timed
// passes over all files. Prints one JSON object on stdout.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [sharpDir, set, concurrencyArg, iterationsArg, ...files] = process.argv.slice(2);
if (!sharpDir || !set || !files.length) {
  console.error("usage: sharp-bench.mjs SHARP_DIR one|eager5|eager10 CONCURRENCY ITERATIONS FILE...");
  process.exit(2);
}
const concurrency = Number(concurrencyArg);
const iterations = Number(iterationsArg);
const require = createRequire(join(sharpDir, "package.json"));
const sharp = require("sharp");
sharp.cache(false);
sharp.concurrency(1);

const WIDTHS = [2048, 1024, 640, 320, 160];
const SETS = {
  one: [{ width: 300, format: "jpeg", quality: 80 }],
  eager5: WIDTHS.map((width) => ({ width, format: "webp", quality: 75 })),
  eager10: WIDTHS.flatMap((width) => [
    { width, format: "jpeg", quality: 80 },
    { width, format: "webp", quality: 75 },
  ]),
};
const variants = SETS[set];
if (!variants) {
  console.error(`unknown set ${set}`);
  process.exit(2);
}

const sources = files.map((f) => readFileSync(f));

function pipeline(buf, v) {
  // Auto-orient like Rendition does (a no-op for orientation 1); metadata is stripped by
  // default; JPEG: optimised Huffman coding (sharp's default, as Rendition), 4:2:0.
  let p = sharp(buf);
  p = typeof p.autoOrient === "function" ? p.autoOrient() : p.rotate();
  p = p.resize({ width: v.width, withoutEnlargement: true });
  p = v.format === "jpeg" ? p.jpeg({ quality: v.quality }) : p.webp({ quality: v.quality });
  return p.toBuffer();
}

// One pass: every (image, variant) pipeline, CONCURRENCY at a time from a shared queue.
async function pass() {
  const tasks = [];
  for (const buf of sources) for (const v of variants) tasks.push([buf, v]);
  let next = 0;
  let bytes = 0;
  async function worker() {
    while (next < tasks.length) {
      const [buf, v] = tasks[next++];
      const out = await pipeline(buf, v); // not `bytes += await …`: that loses updates
      bytes += out.length;
    }
  }
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, bytes };
}

const warmup = await pass();
const times = [];
let outBytes = 0;
for (let i = 0; i < iterations; i++) {
  const r = await pass();
  times.push(r.seconds);
  outBytes = r.bytes;
}
console.log(
  JSON.stringify({
    set,
    concurrency,
    images: sources.length,
    outputs_per_image: variants.length,
    warmup_s: warmup.seconds,
    times_s: times,
    out_bytes: outBytes,
    maxrss_kb: process.resourceUsage().maxRSS,
    sharp: sharp.versions.sharp,
    libvips: sharp.versions.vips,
  }),
);
