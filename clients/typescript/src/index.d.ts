// Types of rendition-urls (src/index.js): browser-safe, no signing.

/** A URL Rendition would refuse to make or serve. */
export class RenditionError extends Error {
  /** Rendition's error kind: `invalid_key`, `bad_path`, `bad_key`, `unknown_preset`,
   * `specs_disabled` or `wrong_extension`. */
  readonly kind: string;
  constructor(kind: string, message: string);
}

/** A spec Rendition refuses (kind `bad_key`). */
export class SpecError extends RenditionError {
  /** `empty`, `not_a_pair`, `unknown_key`, `duplicate_key`, `invalid_value`, `requires`,
   * `conflict` or `not_canonical`. */
  readonly reason: string;
  /** The key (or the pair) it is about. */
  readonly detail: string | null;
  constructor(reason: string, detail: string | null, message: string);
}

export type SpecFormat = "jpeg" | "png" | "webp" | "avif" | "gif" | "original" | "auto";
/** A format a URL can name: `auto` is negotiated per request (`.auto`). */
export type UrlFormat = "jpeg" | "png" | "webp" | "avif" | "gif" | "auto";
export type MadeFormat = "jpeg" | "png" | "webp" | "avif" | "gif";

/** A parsed spec; `formatSpec` gives its canonical text. */
export interface Spec {
  readonly width: number | null;
  readonly height: number | null;
  readonly fit: "cover" | "contain" | "fill" | "inside" | "outside";
  readonly gravity: string;
  readonly format: SpecFormat;
  readonly quality: number | null;
  /** `rrggbb`, lowercase. */
  readonly background: string | null;
  readonly enlarge: boolean;
  /** Focal point `[x, y]` in thousandths. */
  readonly focus: readonly [number, number] | null;
  /** Device pixel ratio in tenths (`dpr=1.5` is 15). */
  readonly dprTenths: number;
  readonly progressive: boolean;
  readonly palette: boolean;
  readonly lossless: boolean;
}

/** Parses a spec in any key order; throws SpecError as Rendition would. */
export function parseSpec(text: string): Spec;
/** The canonical text of a parsed spec. */
export function formatSpec(spec: Spec): string;
/** The canonical text of a spec given in any order: `fm=webp,w=320` → `w=320,fm=webp`. */
export function canonicalSpec(text: string): string;

/** Namespace of Rendition's UUIDv5 source identities. */
export const NAMESPACE: string;
export const MAX_KEY_BYTES: number;
export const EXTENSIONS: Readonly<Record<UrlFormat, string>>;
export const AUTO_ORDER: readonly UrlFormat[];

/** Percent-encodes a derivative key for a URL path. */
export function encodeKey(key: string): string;
/** The GUID a key's file name carries, lowercase, or null. */
export function guidInName(key: string): string | null;
/** The GUID of a source version: its file name's, else UUIDv5(bucket, key, version). */
export function sourceGuid(bucket: string, key: string, version: string): string;
/** The version of a preset's spec in its names (`thumb.{hash}.webp`): the first 8 hex
 * digits of SHA-256 over the canonical spec text. */
export function specHash(canonical: string): string;
/** What a preset's `.auto` URL is versioned by: its spec with `fm=auto`, then
 * `;formats=` and its formats when it names some. */
export function negotiatedText(preset: Preset): string;

/** A preset as rendition.toml writes it: a spec, or a table. */
export type PresetConfig = string | { spec: string; formats?: MadeFormat[]; eager?: boolean };

/** The settings that shape URLs, as in rendition.toml (other sections are ignored). */
export interface Config {
  urls?: {
    hosts?: string[];
    scheme?: "https" | "http";
    shard_https?: boolean;
    presets_only?: boolean;
    /** Server-side only: needs `rendition-urls/node`. */
    signing_keys?: string[];
    default_ttl_secs?: number | null;
  };
  storage?: { source_prefix?: string; derived_prefix?: string; [other: string]: unknown };
  presets?: Record<string, PresetConfig>;
  [section: string]: unknown;
}

export const DEFAULT_PRESETS: Readonly<Record<string, PresetConfig>>;

export interface Preset {
  readonly spec: Spec;
  readonly formats: readonly MadeFormat[];
  readonly eager: boolean;
  /** The formats it is served in (`auto` in it: JPEG or PNG). */
  readonly offered: readonly SpecFormat[];
  /** Whether its URLs may end in `.auto`. */
  readonly negotiates: boolean;
}

/** Which source version: its GUID, or the bucket and version (S3 version id, else ETag)
 * it derives from; neither when the source's file name is a GUID. */
export interface SourceVersion {
  guid?: string;
  bucket?: string;
  version?: string;
}

export interface UrlOptions extends SourceVersion {
  preset?: string;
  /** Any key order; canonicalised. */
  spec?: string;
  /** One format of several (default: `auto` when the variant negotiates, else its `fm`);
   * required for `fm=original` (what the source renders to: its own, TIFF → png,
   * HEIF → avif). */
  format?: UrlFormat;
  /** Unix seconds: a signed URL's `exp` is now + `default_ttl_secs` (default: the clock). */
  now?: number;
}

export interface SrcsetOptions extends SourceVersion {
  /** Default: the eager presets with a width and no height. */
  presets?: string[];
  format?: UrlFormat;
}

export type Signer = (key: string, path: string, exp: number | null) => string;

export class UrlGenerator {
  /** @param options.sign needed when `signing_keys` are configured: use
   * `rendition-urls/node`'s UrlGenerator instead of passing one. */
  constructor(config?: Config, options?: { sign?: Signer });
  readonly presets: Readonly<Record<string, Preset>>;
  readonly hosts: readonly string[];
  readonly scheme: "https" | "http";
  readonly presetsOnly: boolean;
  readonly defaultTtlSecs: number | null;
  readonly sourcePrefix: string;
  readonly derivedPrefix: string;
  /** The URL of one variant of a source. Throws RenditionError as Rendition refuses it. */
  url(sourceKey: string, options: UrlOptions): string;
  /** What `rendition url` prints (a multi-format preset: `.auto`, then each format). */
  urls(sourceKey: string, options: UrlOptions): string[];
  /** `"URL 320w, URL 640w, …"`, narrowest first, one candidate per width. */
  srcset(sourceKey: string, options?: SrcsetOptions): string;
  /** The URL of a derivative key as a manifest lists it. */
  forKey(derivedKey: string, now?: number): string;
  /** The host of a decoded path (`/` + derived key); null when URLs are relative. */
  hostFor(path: string): string | null;
  toJSON(): object;
}
