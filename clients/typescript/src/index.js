// Rendition derivative URLs, byte for byte as `rendition url` makes them (pipeline/src/url.rs,
// pipeline/src/naming.rs):
//
//   {scheme}://{host}/{derived key}                                presets
//   {scheme}://{host}/{derived key}?exp={unix seconds}&sig={mac}   explicit specs
//
// A preset's file name carries the hash of its spec (`thumb.3fa9c2e1.webp`): the first 8
// hex digits of SHA-256 over the canonical spec in that format (`.auto`: over its
// negotiated text, `negotiatedText`), so an edited preset gets new URLs.
//
// This module runs in browsers and Node alike and never imports node:crypto: presets,
// srcset, sharding and GUIDs need no secret. Signing does, so it lives in ./node.js
// (`rendition-urls/node`), whose UrlGenerator is this one with an HMAC from node:crypto.

import { sha1, sha256 } from "./hash.js";
import { RenditionError, SpecError, parseSpec, formatSpec, parseCanonical, scaled } from "./spec.js";

export { RenditionError, SpecError, canonicalSpec, parseSpec, formatSpec } from "./spec.js";

/** Namespace of Rendition's UUIDv5 source identities (never changes). */
export const NAMESPACE = "6f1c2b1e-4d7a-4c39-9a52-0e8b7d3f51a4";
/** Longest key S3 accepts, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/** File extension of each URL format (`auto`: negotiated per request). */
export const EXTENSIONS = Object.freeze({ jpeg: "jpg", png: "png", webp: "webp", avif: "avif", gif: "gif", auto: "auto" });
/** What a plain `fm=auto` offers, in the server's order (`auto` = JPEG or PNG). */
export const AUTO_ORDER = Object.freeze(["avif", "webp", "auto"]);

const utf8 = new TextEncoder();
const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LOWER_GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UNRESERVED = /[A-Za-z0-9\-._~/,=:]/;
const URL_KEYS = ["hosts", "scheme", "shard_https", "presets_only", "signing_keys", "default_ttl_secs"];
const PRESET_KEYS = ["spec", "eager", "formats"];

/** Refuses a lone UTF-16 surrogate, which no Rust string (so no key) can hold. */
function wellFormed(text, kind) {
  if (/\p{Surrogate}/u.test(text)) throw new RenditionError(kind, "not valid Unicode (a lone surrogate)");
  return text;
}

/** Percent-encodes a derivative key for a URL path: every UTF-8 byte outside
 * `A-Z a-z 0-9 - . _ ~ / , = :` as `%XX` (uppercase hex). */
export function encodeKey(key) {
  let out = "";
  for (const byte of utf8.encode(wellFormed(key, "bad_path"))) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The GUID a key's file name carries (`…/{uuid}` or `…/{uuid}.{ext}`), lowercase. */
export function guidInName(key) {
  const file = key.slice(key.lastIndexOf("/") + 1);
  const dot = file.indexOf(".");
  const stem = dot < 0 ? file : file.slice(0, dot);
  return HYPHENATED.test(stem) ? stem.toLowerCase() : null;
}

function uuidBytes(guid) {
  return Uint8Array.from(guid.replace(/-/g, "").match(/../g), (h) => parseInt(h, 16));
}

function formatUuid(bytes) {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The GUID a source version's derivatives are filed under: the one its file name
 * carries, else the UUIDv5 of bucket, key and version (S3 version id, else the ETag with
 * its quotes, as S3 returns it). */
export function sourceGuid(bucket, key, version) {
  const named = guidInName(key);
  if (named !== null) return named;
  const name = utf8.encode(wellFormed(`${bucket}\n${key}\n${version}`, "invalid_key"));
  const input = new Uint8Array(16 + name.length);
  input.set(uuidBytes(NAMESPACE));
  input.set(name, 16);
  const hash = sha1(input).slice(0, 16);
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  return formatUuid(hash);
}

function isPresetName(name) {
  return /^[a-z0-9][a-z0-9_-]{0,63}$/.test(name);
}

/** The version of a preset's spec in its names: the first 8 lowercase hex digits of
 * SHA-256 over the canonical spec text (`w=160,h=160,fit=cover,fm=webp,q=75`). */
export function specHash(canonical) {
  const digest = sha256(utf8.encode(canonical)).slice(0, 4);
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isSpecHash(text) {
  return /^[0-9a-f]{8}$/.test(text);
}

/** What a preset's `.auto` URL is versioned by: its spec with `fm=auto`, then
 * `;formats=` and its formats when it names some. */
export function negotiatedText(preset) {
  let text = formatSpec({ ...preset.spec, format: "auto" });
  if (preset.formats.length) text += `;formats=${preset.formats.join(",")}`;
  return text;
}

/** The spec hash in a preset's URL for `format` (`auto`: its negotiated URL). */
function urlHash(preset, format) {
  if (format === "auto" && preset.negotiates) return specHash(negotiatedText(preset));
  const fm = preset.offered.length === 1 && preset.offered[0] === "original" ? "original" : format;
  return specHash(formatSpec({ ...preset.spec, format: fm }));
}

/** Unicode general category Cc, as Rust's `char::is_control`. */
function hasControl(text) {
  return /[\u0000-\u001f\u007f-\u009f]/.test(text);
}

function checkKey(key) {
  if (hasControl(key)) throw new RenditionError("bad_path", "malformed URL path: control character");
  if (key.split("/").some((seg) => seg === "." || seg === "..")) {
    throw new RenditionError("bad_path", "malformed URL path: '.' or '..' segment");
  }
}

/** A preset from a spec string or a rendition.toml preset table. */
function preset(name, value) {
  const table = typeof value === "string" ? { spec: value } : value;
  const unknown = Object.keys(table).filter((k) => !PRESET_KEYS.includes(k));
  if (unknown.length) throw new TypeError(`preset ${name}: unknown settings ${unknown.join(", ")}`);
  const spec = parseSpec(table.spec);
  const formats = Object.freeze([...(table.formats ?? [])]);
  if (!isPresetName(name)) {
    throw new TypeError(`preset name ${JSON.stringify(name)} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit`);
  }
  if (formats.length) {
    if (spec.format !== "original" && spec.format !== "auto") {
      throw new TypeError(`preset ${name}: a preset with \`formats\` has no \`fm\` in its spec (or fm=auto)`);
    }
    formats.forEach((f, i) => {
      if (!["jpeg", "png", "webp", "avif", "gif"].includes(f)) {
        throw new TypeError(`preset ${name}: formats[${i}] must be jpeg, png, webp, avif or gif`);
      }
      if (formats.indexOf(f) !== i) throw new TypeError(`preset ${name}: ${f} is listed twice in formats`);
    });
  }
  const offered = formats.length ? formats : spec.format === "auto" ? AUTO_ORDER : [spec.format];
  const negotiates = formats.length > 0 || spec.format === "auto";
  return Object.freeze({ spec, formats, eager: Boolean(table.eager), offered, negotiates });
}

/** Rendition's built-in presets (used when a configuration names none). */
export const DEFAULT_PRESETS = Object.freeze({
  xl: { spec: "w=2048,fm=webp,q=75", eager: true },
  lg: { spec: "w=1024,fm=webp,q=75", eager: true },
  md: { spec: "w=640,fm=webp,q=75", eager: true },
  sm: { spec: "w=320,fm=webp,q=75", eager: true },
  thumb: { spec: "w=160,h=160,fit=cover,fm=webp,q=75", eager: true },
  og: { spec: "w=1200,h=630,fit=cover,fm=jpeg,q=82" },
});

/** The extension of `format` when the server serves the variant in it. */
function extension(offered, negotiates, format) {
  if (!(format in EXTENSIONS)) {
    if (format === "original") {
      throw new TypeError("this variant keeps the source's format: pass format (the format it renders to)");
    }
    throw new TypeError(`unknown format ${JSON.stringify(format)} (one of ${Object.keys(EXTENSIONS).join(", ")})`);
  }
  const ext = EXTENSIONS[format];
  const served =
    (negotiates && format === "auto") ||
    offered.some((f) => EXTENSIONS[f] === ext) ||
    (offered.length === 1 && offered[0] === "original" && format !== "auto");
  if (!served) {
    const made = offered.length > 1 ? "auto" : (EXTENSIONS[offered[0]] ?? "the source's");
    throw new RenditionError("wrong_extension", `this variant is .${made}, not .${ext}`);
  }
  return ext;
}

/** Builds derivative URLs from the settings that shape them: a rendition.toml-shaped
 * object (`{ urls, storage, presets }`, e.g. parsed with a TOML library). Other sections
 * are ignored; environment overrides (RENDITION__URLS__SIGNING_KEYS) are not read. */
export class UrlGenerator {
  #keys;
  #sign;
  #shard;

  /**
   * @param config `{ urls?, storage?, presets? }` as in rendition.toml.
   * @param options `{ sign(key, path, exp) }`: the HMAC signer, needed when `signing_keys`
   *   are configured (rendition-urls/node passes node:crypto's).
   */
  constructor(config = {}, { sign } = {}) {
    const urls = config.urls ?? {};
    const unknown = Object.keys(urls).filter((k) => !URL_KEYS.includes(k));
    if (unknown.length) throw new TypeError(`unknown [urls] settings: ${unknown.join(", ")}`);
    const { hosts = [], scheme = "https", shard_https = false, presets_only = false } = urls;
    const { signing_keys = [], default_ttl_secs = null } = urls;
    const storage = config.storage ?? {};
    const { source_prefix = "originals/", derived_prefix = "derived/" } = storage;
    if (scheme !== "https" && scheme !== "http") {
      throw new TypeError(`urls.scheme must be "https" or "http", got ${JSON.stringify(scheme)}`);
    }
    for (const host of hosts) {
      if (!host || /[/?#@\\\s]/.test(host) || hasControl(host)) {
        throw new TypeError(`urls.hosts entries must be host names (optionally with a port), got ${JSON.stringify(host)}`);
      }
    }
    if (signing_keys.some((k) => utf8.encode(k).length < 32)) {
      throw new TypeError("urls.signing_keys must be at least 32 bytes each");
    }
    if (signing_keys.length && typeof sign !== "function") {
      throw new TypeError(
        "signing needs node:crypto: import { UrlGenerator } from \"rendition-urls/node\" on the server " +
          "(signing keys never belong in a browser)",
      );
    }
    if (default_ttl_secs !== null && !(Number.isSafeInteger(default_ttl_secs) && default_ttl_secs >= 1)) {
      throw new TypeError("urls.default_ttl_secs must be at least 1 (or unset)");
    }
    for (const [name, prefix] of [["source_prefix", source_prefix], ["derived_prefix", derived_prefix]]) {
      if (prefix.length < 2 || !prefix.endsWith("/") || prefix.startsWith("/") || prefix.includes("..")) {
        throw new TypeError(`storage.${name} must be a relative folder ending in '/', got ${JSON.stringify(prefix)}`);
      }
    }
    const given = config.presets && Object.keys(config.presets).length ? config.presets : DEFAULT_PRESETS;
    this.presets = Object.freeze(
      Object.fromEntries(Object.entries(given).map(([name, value]) => [name, preset(name, value)])),
    );
    this.hosts = Object.freeze([...hosts]);
    this.scheme = scheme;
    this.presetsOnly = presets_only;
    this.defaultTtlSecs = default_ttl_secs;
    this.sourcePrefix = source_prefix;
    this.derivedPrefix = derived_prefix;
    this.#keys = [...signing_keys];
    this.#sign = sign;
    this.#shard = scheme !== "https" || shard_https;
  }

  /** The URL of one variant (`preset` or `spec`, any key order) of a source. See index.d.ts. */
  url(sourceKey, { preset, spec, guid, bucket, version, format, now } = {}) {
    const rel = this.#sourceRel(sourceKey);
    const resolved = this.#guid(sourceKey, guid, bucket, version);
    const [variant, offered, negotiates, fallback] = this.#variant(preset, spec);
    const ext = extension(offered, negotiates, format ?? fallback);
    const segment = preset === undefined ? variant : `${preset}.${urlHash(this.presets[preset], format ?? fallback)}`;
    const key = `${this.derivedPrefix}${rel}/${resolved}/${segment}.${ext}`;
    const bytes = utf8.encode(key).length;
    if (bytes > MAX_KEY_BYTES) {
      throw new RenditionError("invalid_key", `key is ${bytes} bytes; at most ${MAX_KEY_BYTES} are allowed`);
    }
    return this.forKey(key, now);
  }

  /** What `rendition url` prints: one URL, or for a preset in several formats its `.auto`
   * URL and then one per format. `format` only for fm=original variants. */
  urls(sourceKey, { preset, spec, guid, bucket, version, format, now } = {}) {
    const [, , , fallback] = this.#variant(preset, spec);
    let formats;
    if (fallback === "original") {
      if (format === undefined) {
        throw new TypeError("this variant keeps the source's format: pass format (the format it renders to)");
      }
      formats = [format];
    } else if (format !== undefined) {
      throw new TypeError("format is only for fm=original variants; use url({ format }) for one format");
    } else if (preset !== undefined && this.presets[preset].formats.length) {
      formats = ["auto", ...this.presets[preset].formats];
    } else {
      formats = [fallback];
    }
    return formats.map((f) => this.url(sourceKey, { preset, spec, guid, bucket, version, format: f, now }));
  }

  /** `"URL 320w, URL 640w, …"` over presets, narrowest first, one candidate per width (the
   * first by name); a candidate's width is its preset's `w` × `dpr`. Default presets: the
   * eager ones with a width and no height (`rendition html`'s ladder). */
  srcset(sourceKey, { presets, guid, bucket, version, format } = {}) {
    const names =
      presets ??
      Object.keys(this.presets)
        .sort()
        .filter((n) => this.presets[n].eager && this.presets[n].spec.width !== null && this.presets[n].spec.height === null);
    const items = names.map((name) => {
      const found = Object.hasOwn(this.presets, name) ? this.presets[name] : undefined;
      if (!found) throw new RenditionError("unknown_preset", `unknown preset ${JSON.stringify(name)}`);
      if (found.spec.width === null) throw new TypeError(`preset ${name} has no width: it cannot be a srcset candidate`);
      return [scaled(found.spec, found.spec.width), name];
    });
    items.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    const parts = [];
    let last = null;
    for (const [width, name] of items) {
      if (width === last) continue;
      last = width;
      parts.push(`${this.url(sourceKey, { preset: name, guid, bucket, version, format })} ${width}w`);
    }
    return parts.join(", ");
  }

  /** The URL of a derivative key as a manifest lists it, as `UrlGenerator::for_key` makes
   * it: signed iff its variant is an explicit spec. The extension is not checked. */
  forKey(derivedKey, now) {
    checkKey(wellFormed(derivedKey, "bad_path"));
    const isSpec = this.#parseDerivativeKey(derivedKey);
    const path = `/${derivedKey}`;
    const host = this.hostFor(path);
    let url = `${host === null ? "" : `${this.scheme}://${host}`}/${encodeKey(derivedKey)}`;
    if (isSpec) {
      let exp = null;
      if (this.defaultTtlSecs !== null) exp = (now ?? Math.floor(Date.now() / 1000)) + this.defaultTtlSecs;
      const sig = this.#sign(this.#keys[0], path, exp);
      url += exp === null ? `?sig=${sig}` : `?exp=${exp}&sig=${sig}`;
    }
    return url;
  }

  /** The host serving a decoded URL path (`/` + derived key); null when URLs are relative.
   * Sharded by SHA-256(path)'s first 8 bytes, big-endian, modulo the number of hosts. */
  hostFor(path) {
    if (!this.hosts.length) return null;
    if (!this.#shard) return this.hosts[0];
    const head = sha256(utf8.encode(wellFormed(path, "bad_path"))).slice(0, 8);
    const n = head.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
    return this.hosts[Number(n % BigInt(this.hosts.length))];
  }

  toJSON() {
    return { hosts: this.hosts, scheme: this.scheme, signing_keys: `[${this.#keys.length} redacted]` };
  }

  #sourceRel(sourceKey) {
    const rel = sourceKey.startsWith(this.sourcePrefix) ? sourceKey.slice(this.sourcePrefix.length) : "";
    if (!rel || rel.endsWith("/")) {
      throw new RenditionError("invalid_key", `key ${JSON.stringify(sourceKey)} is not under the source prefix ${JSON.stringify(this.sourcePrefix)}`);
    }
    return rel;
  }

  #guid(key, guid, bucket, version) {
    if (guid !== undefined) {
      if (bucket !== undefined || version !== undefined) throw new TypeError("give guid, or bucket and version, not both");
      if (!HYPHENATED.test(guid)) throw new TypeError(`${JSON.stringify(guid)} is not a hyphenated GUID`);
      return guid.toLowerCase();
    }
    if (bucket !== undefined && version !== undefined) return sourceGuid(bucket, key, version);
    const named = guidInName(key);
    if (named === null || bucket !== undefined || version !== undefined) {
      throw new TypeError("give guid, or bucket and version (the source's version id or ETag)");
    }
    return named;
  }

  /** `[segment, offered formats, negotiates, default format]`. */
  #variant(preset, spec) {
    if ((preset === undefined) === (spec === undefined)) throw new TypeError("give exactly one of preset or spec");
    if (preset !== undefined) {
      const found = Object.hasOwn(this.presets, preset) ? this.presets[preset] : undefined;
      if (!found) throw new RenditionError("unknown_preset", `unknown preset ${JSON.stringify(preset)}`);
      return [preset, found.offered, found.negotiates, found.formats.length ? "auto" : found.spec.format];
    }
    const parsed = parseSpec(spec);
    const auto = parsed.format === "auto";
    return [formatSpec(parsed), auto ? AUTO_ORDER : [parsed.format], auto, parsed.format];
  }

  /** Checks `{derived_prefix}{rel}/{guid}/{variant}.{ext}` as the server does; whether its
   * variant is a spec. */
  #parseDerivativeKey(key) {
    const bad = (why) => new RenditionError("bad_key", `malformed derivative key ${JSON.stringify(key)}: ${why}`);
    if (!key.startsWith(this.derivedPrefix)) throw bad(`not under the derived prefix ${this.derivedPrefix}`);
    const rest = key.slice(this.derivedPrefix.length);
    const slash = rest.lastIndexOf("/");
    if (slash < 0) throw bad("no variant segment");
    const head = rest.slice(0, slash);
    const file = rest.slice(slash + 1);
    const slash2 = head.lastIndexOf("/");
    if (slash2 < 0) throw bad("no source segment");
    if (slash2 === 0) throw bad("empty source");
    if (!LOWER_GUID.test(head.slice(slash2 + 1))) throw bad("the segment before the variant is not a lowercase GUID");
    const dot = file.lastIndexOf(".");
    if (dot < 0 || dot === file.length - 1) throw bad("no extension");
    let name = file.slice(0, dot);
    if (name.includes("=")) {
      try {
        parseCanonical(name);
      } catch (e) {
        if (e instanceof SpecError) throw new RenditionError("bad_key", `invalid variant in ${JSON.stringify(key)}: ${e.message}`);
        throw e;
      }
      if (this.presetsOnly || !this.#keys.length) {
        throw new RenditionError("specs_disabled", "explicit specs are disabled (presets_only, or no signing key)");
      }
      return true;
    }
    const versioned = name.indexOf(".");
    if (versioned >= 0) {
      // `{preset}.{spec hash}`; a bare name is a key written before presets were versioned.
      const hash = name.slice(versioned + 1);
      name = name.slice(0, versioned);
      if (!isPresetName(name) || !isSpecHash(hash)) throw bad("variant is neither a versioned preset name nor a spec");
    }
    if (!isPresetName(name)) throw bad("variant is neither a preset name nor a spec");
    if (!Object.hasOwn(this.presets, name)) throw new RenditionError("unknown_preset", `unknown preset ${JSON.stringify(name)}`);
    return false;
  }
}
