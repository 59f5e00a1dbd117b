// What the vectors cannot say: the browser build never loads node:crypto, argument errors,
// defaults, and the pure-JS hashes against node:crypto.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { sha1, sha256 } from "../src/hash.js";
import * as browser from "../src/index.js";
import { RenditionError, UrlGenerator, sourceGuid } from "../src/node.js";

const GUID = "984c96da-5462-511e-9377-0079ce0a525e";
const KEY = "a-signing-key-of-at-least-32-bytes-0123";

test("the browser modules import nothing from node", () => {
  for (const file of ["index.js", "spec.js", "hash.js"]) {
    const source = readFileSync(new URL(`../src/${file}`, import.meta.url), "utf8");
    const imports = [...source.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    assert.ok(imports.every((i) => i.startsWith("./")), `${file} imports ${imports}`);
    assert.doesNotMatch(source, /\bimport\s*\(|\brequire\s*\(|\bprocess\.|\bBuffer\b/, file);
  }
});

test("signing keys need the node build", () => {
  const config = { urls: { signing_keys: [KEY] } };
  assert.throws(() => new browser.UrlGenerator(config), /rendition-urls\/node/);
  const plain = new browser.UrlGenerator({ urls: { hosts: ["img.example.com"] } });
  assert.throws(() => plain.url("originals/cat.jpg", { spec: "w=10,fm=webp", guid: GUID }), (e) => e.kind === "specs_disabled");
  assert.equal(
    plain.url("originals/cat.jpg", { preset: "thumb", guid: GUID }),
    `https://img.example.com/derived/cat.jpg/${GUID}/thumb.a3134a7c.webp`,
  );
});

test("sha256 and sha1 agree with node:crypto", () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 4099]) {
    const bytes = randomBytes(n);
    assert.equal(Buffer.from(sha256(bytes)).toString("hex"), createHash("sha256").update(bytes).digest("hex"));
    assert.equal(Buffer.from(sha1(bytes)).toString("hex"), createHash("sha1").update(bytes).digest("hex"));
  }
});

test("settings are checked like Rendition checks them", () => {
  for (const bad of [
    { urls: { signing_keys: ["x".repeat(31)] } },
    { urls: { scheme: "ftp" } },
    { urls: { hosts: ["cdn.example.com/x"] } },
    { urls: { hosts: [""] } },
    { urls: { default_ttl_secs: 0 } },
    { urls: { shard: true } },
    { presets: { Big: "w=10" } },
    { presets: { p: { spec: "w=10,fm=webp", formats: ["avif"] } } },
    { presets: { p: { spec: "w=10", formats: ["avif", "avif"] } } },
    { presets: { p: { spec: "w=10", size: 3 } } },
    { storage: { source_prefix: "/abs/" } },
  ]) {
    assert.throws(() => new UrlGenerator(bad), TypeError, JSON.stringify(bad));
  }
  assert.ok(new UrlGenerator({ urls: { signing_keys: ["x".repeat(32)], hosts: ["localhost:8080"] } }));
  assert.deepEqual(Object.keys(new UrlGenerator({ presets: {} }).presets).sort(), ["lg", "md", "og", "sm", "thumb", "xl"]);
});

test("the GUID comes from one place", () => {
  const g = new UrlGenerator();
  assert.throws(() => g.url("originals/cat.jpg", { preset: "thumb" }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "thumb", bucket: "photos" }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "thumb", guid: GUID, bucket: "b", version: "v" }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "thumb", guid: `{${GUID}}` }), TypeError);
  const named = "0b1e6c7a-52f4-4a3e-9f0d-2d9a5b6c7e81";
  assert.ok(g.url(`originals/${named}.jpg`, { preset: "thumb" }).includes(`/${named}/thumb.a3134a7c.webp`));
  const want = g.url("originals/cat.jpg", { preset: "thumb", guid: GUID });
  assert.equal(g.url("originals/cat.jpg", { preset: "thumb", guid: GUID.toUpperCase() }), want);
  assert.equal(
    g.url("originals/cat.jpg", { preset: "thumb", bucket: "photos", version: "v1" }),
    g.url("originals/cat.jpg", { preset: "thumb", guid: sourceGuid("photos", "originals/cat.jpg", "v1") }),
  );
});

test("one variant, and fm=original needs the format it renders to", () => {
  const g = new UrlGenerator({ urls: { signing_keys: [KEY] }, presets: { same: "w=800" } });
  assert.throws(() => g.url("originals/cat.jpg", { guid: GUID }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "same", spec: "w=1,fm=png", guid: GUID }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "same", guid: GUID }), /format/);
  assert.throws(() => g.urls("originals/cat.jpg", { spec: "w=10", guid: GUID }), /format/);
  assert.throws(() => g.urls("originals/cat.jpg", { spec: "w=10,fm=webp", guid: GUID, format: "webp" }), TypeError);
  assert.throws(() => g.url("originals/cat.jpg", { preset: "same", guid: GUID, format: "jpg" }), /unknown format/);
  // fm=original: one spec (and hash) whatever format the source renders to.
  const same = browser.specHash("w=800");
  assert.ok(g.url("originals/scan.tiff", { preset: "same", guid: GUID, format: "png" }).endsWith(`/same.${same}.png`));
});

test("the expiry defaults to the clock", () => {
  const g = new UrlGenerator({ urls: { signing_keys: [KEY], default_ttl_secs: 60 } });
  const before = Math.floor(Date.now() / 1000);
  const exp = Number(/\?exp=(\d+)&/.exec(g.url("originals/cat.jpg", { spec: "w=10,fm=webp", guid: GUID }))[1]);
  assert.ok(exp >= before + 60 && exp <= Math.floor(Date.now() / 1000) + 60);
});

test("srcset needs widths and known presets", () => {
  const g = new UrlGenerator({ presets: { tall: "h=400,fm=webp", w1: "w=100,fm=webp" } });
  assert.throws(() => g.srcset("originals/cat.jpg", { presets: ["w1", "tall"], guid: GUID }), /no width/);
  assert.throws(() => g.srcset("originals/cat.jpg", { presets: ["constructor"], guid: GUID }), RenditionError);
  assert.equal(g.srcset("originals/cat.jpg", { presets: [], guid: GUID }), "");
});

test("keys stay out of JSON", () => {
  assert.doesNotMatch(JSON.stringify(new UrlGenerator({ urls: { signing_keys: [KEY] } })), new RegExp(KEY));
});

test("an edited preset gets new URLs", () => {
  // The spec hash: the first 8 hex digits of SHA-256 of the canonical spec, as the server names keys.
  const before = new UrlGenerator({ presets: { thumb: "w=160,h=160,fit=cover,fm=webp,q=75" } });
  const after = new UrlGenerator({ presets: { thumb: "fm=webp,w=200,h=200,fit=cover,q=75" } });
  const old = before.url("originals/cat.jpg", { preset: "thumb", guid: GUID });
  const now = after.url("originals/cat.jpg", { preset: "thumb", guid: GUID });
  assert.ok(old.endsWith("/thumb.a3134a7c.webp"), old);
  assert.notEqual(now, old);
  assert.equal(browser.specHash("w=160,h=160,fit=cover,fm=webp,q=75"), createHash("sha256").update("w=160,h=160,fit=cover,fm=webp,q=75").digest("hex").slice(0, 8));
  // Old and legacy keys stay valid keys: a URL of a stored object keeps working.
  for (const key of [old.slice(1), `derived/cat.jpg/${GUID}/thumb.webp`]) assert.equal(after.forKey(key), `/${key}`);
  assert.throws(() => after.forKey(`derived/cat.jpg/${GUID}/thumb.A3134A7C.webp`), (e) => e.kind === "bad_key");
});
