// sharp-bench.mjs: the sharp side of `rendition-bench` (bench/src/external.rs runs it).
//
//   node bench/sharp-bench.mjs SHARP_DIR SET VARIANTS_JSON|- CONCURRENCY ITERATIONS FILE...
//
// SHARP_DIR is where `npm install sharp` was run (scripts/bench.sh uses
// ${RENDITION_CACHE:-$HOME/.cache/rendition}/sharp). VARIANTS_JSON is an array built from
// the same requests Rendition renders (bench/src/cases.rs `Set::sharp_variants`), one
// object per output:
//   {"width": 2048, "height": null, "fit": "inside", "withoutEnlargement": true,
//    "format": "avif", "quality": 75, "effort": 2}
// or `-` for the named sets: SET `one` (w=300 JPEG q80), `eager10` (widths
// 2048/1024/640/320/160, each as JPEG q80 and WebP q75) or `eager5` (the same widths, WebP
// q75 only); otherwise SET only names the set in the output.
// Every variant is its own sharp pipeline from the source buffer (decode, resize, encode),
// as an on-demand service renders each request. Encoders as Rendition (libvips 8.14)
// uses them: JPEG optimised Huffman coding and 4:2:0; WebP lossy; AVIF (AV1 in HEIF,
// libheif with aom) at the given quality and effort, 8 bit, chroma 4:2:0 below quality
// 90 and 4:4:4 from 90 (libvips' `subsample_mode=auto`; sharp's own default is 4:4:4).
// Metadata is stripped (sharp's default). All files are read into memory first; outputs
// go to memory (toBuffer). sharp's operation cache is off and libvips runs one thread per
// pipeline (sharp.concurrency(1)); CONCURRENCY pipelines run at once. One untimed warm-up
// pass, then ITERATIONS timed passes over all files. Prints one JSON object on stdout.
//
//   node bench/sharp-bench.mjs SHARP_DIR probe - 1 0 FILE...
//
// decodes each file (to 8 px) and prints {"ok": true} or {"ok": false, "file", "error"}:
// whether sharp can read that class of sources at all (its prebuilt libvips has no HEVC
// decoder, so no HEIC).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [sharpDir, set, variantsJson, concurrencyArg, iterationsArg, ...files] =
  process.argv.slice(2);
if (!sharpDir || !set || !variantsJson || !files.length) {
  console.error(
    "usage: sharp-bench.mjs SHARP_DIR SET VARIANTS_JSON|- CONCURRENCY ITERATIONS FILE...",
  );
  process.exit(2);
}

const require = createRequire(join(sharpDir, "package.json"));
const sharp = require("sharp");
sharp.cache(false);
sharp.concurrency(1);

if (set === "probe") {
  for (const file of files) {
    try {
      await sharp(readFileSync(file)).resize(8).raw().toBuffer();
    } catch (e) {
      const error = String(e.message ?? e).split("\n").filter(Boolean).pop();
      console.log(JSON.stringify({ ok: false, file, error }));
      process.exit(0);
    }
  }
  console.log(JSON.stringify({ ok: true }));
  process.exit(0);
}

const WIDTHS = [2048, 1024, 640, 320, 160];
const widthOnly = (width, format, quality) => ({
  width,
  height: null,
  fit: "inside",
  withoutEnlargement: true,
  format,
  quality,
});
const SETS = {
  one: [widthOnly(300, "jpeg", 80)],
  eager5: WIDTHS.map((width) => widthOnly(width, "webp", 75)),
  eager10: WIDTHS.flatMap((width) => [
    widthOnly(width, "jpeg", 80),
    widthOnly(width, "webp", 75),
  ]),
};
const variants = variantsJson === "-" ? SETS[set] : JSON.parse(variantsJson);
if (!Array.isArray(variants) || !variants.length) {
  console.error(`no variants: unknown set ${set}, or VARIANTS_JSON is not a non-empty array`);
  process.exit(2);
}
const concurrency = Number(concurrencyArg);
const iterations = Number(iterationsArg);

const sources = files.map((f) => readFileSync(f));

function pipeline(buf, v) {
  // Auto-orient like Rendition does (a no-op for orientation 1).
  let p = sharp(buf);
  p = typeof p.autoOrient === "function" ? p.autoOrient() : p.rotate();
  p = p.resize({
    width: v.width ?? undefined,
    height: v.height ?? undefined,
    fit: v.fit,
    position: "centre",
    withoutEnlargement: v.withoutEnlargement,
  });
  switch (v.format) {
    case "jpeg":
      return p.jpeg({ quality: v.quality }).toBuffer();
    case "webp":
      return p.webp({ quality: v.quality }).toBuffer();
    case "avif":
      return p
        .avif({
          quality: v.quality,
          effort: v.effort,
          bitdepth: 8,
          chromaSubsampling: v.quality >= 90 ? "4:4:4" : "4:2:0",
        })
        .toBuffer();
    default:
      throw new Error(`unsupported format ${v.format}`);
  }
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
