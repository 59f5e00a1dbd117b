// Types of rendition-urls/node (src/node.js): everything in rendition-urls, plus signing.

import { Config, UrlGenerator as BrowserUrlGenerator } from "./index.js";

export * from "./index.js";

/** `base64url_nopad(HMAC-SHA256(key, "{path}\n{exp or ''}"))`. */
export function sign(key: string, path: string, exp: number | null): string;

/** The generator of rendition-urls, able to sign explicit specs (node:crypto). */
export class UrlGenerator extends BrowserUrlGenerator {
  constructor(config?: Config);
}
