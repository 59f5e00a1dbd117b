// Compiled by `tsc -p tsconfig.json` (no emit): the declarations describe the API the tests
// run, and a server and a browser use it as the READMEs show.

import { UrlGenerator as BrowserUrlGenerator, RenditionError, canonicalSpec, type Config } from "../src/index.js";
import { UrlGenerator, sign } from "../src/node.js";

const config: Config = {
  urls: { hosts: ["img1.example.com", "img2.example.com"], signing_keys: ["x".repeat(32)], default_ttl_secs: 3600 },
  presets: { w640: { spec: "w=640,q=60", formats: ["avif", "webp", "jpeg"], eager: true }, thumb: "w=160,fm=webp" },
  render: { avif_effort: 4 },
};
const server = new UrlGenerator(config);
const signed: string = server.url("originals/cat.jpg", { spec: "w=300,fm=webp", bucket: "photos", version: '"etag"' });
const all: string[] = server.urls("originals/cat.jpg", { preset: "w640", guid: "984c96da-5462-511e-9377-0079ce0a525e" });
const sig: string = sign("k".repeat(32), "/derived/a.jpg", null);

const browser = new BrowserUrlGenerator({ urls: { hosts: ["img1.example.com"] } });
const srcset: string = browser.srcset("originals/cat.jpg", { guid: "984c96da-5462-511e-9377-0079ce0a525e", format: "avif" });
const host: string | null = browser.hostFor("/derived/a.jpg");
const canonical: string = canonicalSpec("fm=webp,w=320");

try {
  browser.url("originals/cat.jpg", { preset: "huge", guid: "984c96da-5462-511e-9377-0079ce0a525e" });
} catch (e) {
  if (e instanceof RenditionError) console.log(e.kind satisfies string);
}

// @ts-expect-error a format a URL cannot name
browser.url("originals/cat.jpg", { preset: "thumb", format: "original" });
// @ts-expect-error the browser generator takes no signer by default, but not an unknown option
new BrowserUrlGenerator({}, { hmac: () => "" });

export { signed, all, sig, srcset, host, canonical };
