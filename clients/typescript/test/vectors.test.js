// Every vector of ../../vectors.json (generated from the Rust code by
// tests/integration/vectors.rs): the same inputs must give the same URL, byte for byte, or
// the same refusal.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { RenditionError, SpecError, UrlGenerator, canonicalSpec, encodeKey, sign, sourceGuid } from "../src/node.js";
import { UrlGenerator as BrowserUrlGenerator } from "../src/index.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../vectors.json", import.meta.url), "utf8"));

const generator = (config) => new UrlGenerator(VECTORS.configs[config]);

/** The options of a vector: its GUID (or bucket and version), variant, format and clock. */
function options(v) {
  const out = { now: v.now };
  for (const k of ["guid", "bucket", "version", "preset", "spec", "format"]) if (k in v) out[k] = v[k];
  return out;
}

/** Runs `make`, expecting `v.url` (or `v.urls`, `v.srcset`) or a refusal of kind `v.error`. */
function check(v, field, make) {
  if (field in v) {
    assert.deepEqual(make(), v[field]);
  } else {
    assert.throws(make, (e) => e instanceof RenditionError && e.kind === v.error);
  }
}

const cases = (name) => VECTORS[name].map((v, i) => [`${name} ${i}`, v]);

describe("vectors", () => {
  for (const [name, v] of cases("specs")) {
    test(name, () => {
      if ("canonical" in v) return assert.equal(canonicalSpec(v.input), v.canonical);
      assert.throws(
        () => canonicalSpec(v.input),
        (e) => e instanceof SpecError && e.reason === v.error && e.detail === v.detail,
      );
    });
  }
  for (const [name, v] of cases("guids")) {
    test(name, () => assert.equal(sourceGuid(v.bucket, v.key, v.version), v.guid));
  }
  for (const [name, v] of cases("signatures")) {
    test(name, () => assert.equal(sign(v.key, v.path, v.exp), v.sig));
  }
  for (const [name, v] of cases("encodings")) {
    test(name, () => assert.equal(encodeKey(v.key), v.encoded));
  }
  for (const [name, v] of cases("hosts")) {
    test(name, () => assert.equal(generator(v.config).hostFor(v.path), v.host));
  }
  for (const [name, v] of cases("keys")) {
    test(name, () => check(v, "url", () => generator(v.config).forKey(v.key, v.now)));
  }
  for (const [name, v] of cases("urls")) {
    test(name, () => check(v, "url", () => generator(v.config).url(v.source, options(v))));
  }
  for (const [name, v] of cases("cli")) {
    test(name, () => check(v, "urls", () => generator(v.config).urls(v.source, options(v))));
  }
  for (const [name, v] of cases("srcsets")) {
    test(name, () => {
      const { now, ...rest } = options(v);
      const args = { ...rest, presets: v.presets ?? undefined };
      check(v, "srcset", () => generator(v.config).srcset(v.source, args));
      // Unsigned: the browser build gives the same (its config without the signing keys).
      const { signing_keys, ...urls } = VECTORS.configs[v.config].urls ?? {};
      const browser = new BrowserUrlGenerator({ ...VECTORS.configs[v.config], urls });
      check(v, "srcset", () => browser.srcset(v.source, args));
    });
  }
});
