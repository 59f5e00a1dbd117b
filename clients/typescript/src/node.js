// The server side: everything in ./index.js, with signing by node:crypto's HMAC-SHA256.
// Import this (`rendition-urls/node`) where the signing keys live; browser code imports
// `rendition-urls`, which never loads node:crypto.

import { createHmac } from "node:crypto";
import { UrlGenerator as BrowserUrlGenerator } from "./index.js";

export * from "./index.js";

/** `base64url_nopad(HMAC-SHA256(key, "{path}\n{exp or ''}"))` of a decoded URL path (with
 * its leading `/`). */
export function sign(key, path, exp) {
  return createHmac("sha256", key)
    .update(`${path}\n${exp ?? ""}`)
    .digest("base64url");
}

/** The UrlGenerator of ./index.js, able to sign explicit specs. */
export class UrlGenerator extends BrowserUrlGenerator {
  constructor(config = {}) {
    super(config, { sign });
  }
}
