// Variant specs: parsing (any key order) and the one canonical text, as Rendition's
// image/src/spec/ does it — the same rules, checked in the same order, so a spec is
// refused here exactly when the server would refuse it.

/** A URL Rendition would refuse to make or serve; `kind` is Rendition's error kind. */
export class RenditionError extends Error {
  constructor(kind, message) {
    super(`${message} (${kind})`);
    this.name = "RenditionError";
    this.kind = kind;
  }
}

/** A spec Rendition refuses: `reason` (e.g. `invalid_value`) and the key it is about. */
export class SpecError extends RenditionError {
  constructor(reason, detail, message) {
    super("bad_key", message);
    this.name = "SpecError";
    this.reason = reason;
    this.detail = detail;
  }
}

export const KEYS = ["w", "h", "fit", "g", "fm", "q", "bg", "enlarge", "fx", "fy", "dpr", "pj", "palette", "lossless"];
export const FITS = ["cover", "contain", "fill", "inside", "outside"];
export const GRAVITIES = [
  "centre", "north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest",
  "attention", "entropy",
];
export const FORMATS = ["jpeg", "png", "webp", "avif", "gif", "original", "auto"];
export const MAX_DIMENSION = 16383;

const DEFAULTS = Object.freeze({
  width: null, height: null, fit: "inside", gravity: "centre", format: "original", quality: null,
  background: null, enlarge: false, focus: null, dprTenths: 10, progressive: false, palette: false,
  lossless: false,
});

// ASCII digits only: Number() and parseInt() would take "+5", " 5", "1e3" or "0x10".
const DIGITS = /^[0-9]+$/;

const invalid = (key, value, expected) =>
  new SpecError("invalid_value", key, `invalid value ${JSON.stringify(value)} for ${key}: ${expected}`);

function number(key, value, low, high) {
  const n = !value.startsWith("0") && DIGITS.test(value) ? Number(value) : NaN;
  if (!(n >= low && n <= high)) {
    throw invalid(key, value, `a whole number from ${low} to ${high} without sign or leading zeros`);
  }
  return n;
}

function choice(key, value, allowed) {
  if (!allowed.includes(value)) throw invalid(key, value, `one of ${allowed.join(", ")}`);
  return value;
}

function bool(key, value) {
  if (value !== "true" && value !== "false") throw invalid(key, value, "true or false");
  return value === "true";
}

/** `0`–`1` with up to three decimals, in thousandths. */
function fraction(key, value) {
  const dot = value.indexOf(".");
  const whole = dot < 0 ? value : value.slice(0, dot);
  const frac = dot < 0 ? "" : value.slice(dot + 1);
  const total = whole === "0" || whole === "1" ? Number(whole) * 1000 + Number(frac.padEnd(3, "0")) : NaN;
  const fracOk = dot < 0 || (frac.length >= 1 && frac.length <= 3 && DIGITS.test(frac));
  if (!fracOk || !(total <= 1000)) {
    throw invalid(key, value, "a number from 0 to 1 with at most 3 decimals, e.g. 0.25");
  }
  return total;
}

function fmtFraction(thousandths) {
  const whole = Math.floor(thousandths / 1000);
  const frac = thousandths % 1000;
  return frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(3, "0").replace(/0+$/, "")}`;
}

function dpr(value) {
  const m = /^([0-9])(?:\.([0-9]))?$/.exec(value);
  const tenths = m ? Number(m[1]) * 10 + Number(m[2] ?? 0) : 0;
  if (tenths < 10 || tenths > 40) {
    throw invalid("dpr", value, "a number from 1 to 4 with at most one decimal, e.g. 2 or 1.5");
  }
  return tenths;
}

/** Parses a spec in any key order; throws SpecError as Rendition would. */
export function parseSpec(text) {
  const spec = { ...DEFAULTS };
  const seen = [];
  let fx = null;
  let fy = null;
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=");
    if (eq < 0) throw new SpecError("not_a_pair", pair, `${JSON.stringify(pair)} is not a key=value pair`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (seen.includes(key)) throw new SpecError("duplicate_key", key, `key ${key} is given twice`);
    switch (key) {
      case "w": spec.width = number("w", value, 1, MAX_DIMENSION); break;
      case "h": spec.height = number("h", value, 1, MAX_DIMENSION); break;
      case "fit": spec.fit = choice("fit", value, FITS); break;
      case "g": spec.gravity = choice("g", value, GRAVITIES); break;
      case "fm": spec.format = choice("fm", value, FORMATS); break;
      case "q": spec.quality = number("q", value, 1, 100); break;
      case "bg":
        if (!/^[0-9a-f]{6}$/.test(value)) throw invalid("bg", value, "six lowercase hex digits, e.g. ff8800");
        spec.background = value;
        break;
      case "enlarge": spec.enlarge = bool("enlarge", value); break;
      case "fx": fx = fraction("fx", value); break;
      case "fy": fy = fraction("fy", value); break;
      case "dpr": spec.dprTenths = dpr(value); break;
      case "pj": spec.progressive = bool("pj", value); break;
      case "palette": spec.palette = bool("palette", value); break;
      case "lossless": spec.lossless = bool("lossless", value); break;
      default:
        throw new SpecError("unknown_key", key, `unknown key ${JSON.stringify(key)} (known: ${KEYS.join(", ")})`);
    }
    seen.push(key);
  }
  if (fx !== null && fy !== null) spec.focus = [fx, fy];
  checkCombinations(spec, fx, fy);
  if (Object.keys(DEFAULTS).every((k) => spec[k] === DEFAULTS[k])) {
    throw new SpecError("empty", null, "empty spec: give at least one of w, h or fm");
  }
  return Object.freeze(spec);
}

function checkCombinations(spec, fx, fy) {
  const requires = (key, what) => new SpecError("requires", key, `${key} requires ${what}`);
  if (fx !== null && fy === null) throw requires("fx", "fy");
  if (fy !== null && fx === null) throw requires("fy", "fx");
  if (spec.focus) {
    if (spec.fit !== "cover") throw requires("fx", "fit=cover");
    if (spec.gravity !== "centre") {
      throw new SpecError("conflict", "fx", "fx cannot be combined with g (a focal point replaces the gravity)");
    }
  }
  if ((spec.gravity === "attention" || spec.gravity === "entropy") && spec.fit !== "cover") {
    throw requires("g", "fit=cover for g=attention and g=entropy");
  }
  if (spec.dprTenths !== 10 && spec.width === null && spec.height === null) throw requires("dpr", "w or h");
  for (const [set, key, format] of [
    [spec.progressive, "pj", "jpeg"], [spec.palette, "palette", "png"], [spec.lossless, "lossless", "webp"],
  ]) {
    if (set && spec.format !== format) throw requires(key, `fm=${format}`);
  }
}

/** The canonical text of a parsed spec: keys in KEYS order, defaults left out. */
export function formatSpec(spec) {
  const parts = [];
  if (spec.width !== null) parts.push(`w=${spec.width}`);
  if (spec.height !== null) parts.push(`h=${spec.height}`);
  if (spec.fit !== "inside") parts.push(`fit=${spec.fit}`);
  if (spec.gravity !== "centre") parts.push(`g=${spec.gravity}`);
  if (spec.format !== "original") parts.push(`fm=${spec.format}`);
  if (spec.quality !== null) parts.push(`q=${spec.quality}`);
  if (spec.background !== null) parts.push(`bg=${spec.background}`);
  if (spec.enlarge) parts.push("enlarge=true");
  if (spec.focus) parts.push(`fx=${fmtFraction(spec.focus[0])}`, `fy=${fmtFraction(spec.focus[1])}`);
  if (spec.dprTenths !== 10) {
    const tenth = spec.dprTenths % 10;
    parts.push(`dpr=${Math.floor(spec.dprTenths / 10)}${tenth ? `.${tenth}` : ""}`);
  }
  if (spec.progressive) parts.push("pj=true");
  if (spec.palette) parts.push("palette=true");
  if (spec.lossless) parts.push("lossless=true");
  return parts.join(",");
}

/** The canonical text of a spec given in any order: what URLs and names carry. */
export function canonicalSpec(text) {
  return formatSpec(parseSpec(text));
}

/** Parses a spec that must already be canonical (as in a derivative key). */
export function parseCanonical(text) {
  const spec = parseSpec(text);
  const canonical = formatSpec(spec);
  if (canonical !== text) {
    throw new SpecError("not_canonical", null, `spec ${JSON.stringify(text)} is not canonical; use ${JSON.stringify(canonical)}`);
  }
  return spec;
}

/** `length` CSS pixels in output pixels (× dpr, rounded half up, at least 1). */
export function scaled(spec, length) {
  return Math.max(1, Math.floor((length * spec.dprTenths + 5) / 10));
}
