// CloudFront Function, viewer request, runtime cloudfront-js-2.0.
//
// Reduces the viewer's Accept header to one of avif, webp, jpeg in x-rendition-format,
// the header the cache policy keys on and the origins read: a few cache entries per
// derivative instead of one per distinct Accept string. Any x-rendition-format the viewer
// sent is overwritten; nothing else in the request changes.
//
// The rule is the Rust side's (RFC 9110 media ranges and q): avif when image/avif is
// listed explicitly with q > 0, else webp when image/webp is, else jpeg. Wildcards never
// pick a modern format (browsers send */* and curl sends only that); an explicit q=0
// refuses the type even if it is also listed with q > 0. Only the first 2048 characters
// of Accept are read, whole elements only, so the work is bounded.
//
// Inlined verbatim into infra/aws/template.yaml (AcceptFormatFunction): CloudFormation
// cannot read a file. accept-format.test.js fails when the two differ.

const MAX_ACCEPT = 2048;
const FORMAT_HEADER = 'x-rendition-format';

function handler(event) {
    const request = event.request;
    const headers = request.headers;
    const accept = headers.accept;
    let value;
    if (accept) {
        // Repeated Accept lines mean the same as one comma-joined line (RFC 9110 5.3).
        value = accept.multiValue ? accept.multiValue.map((v) => v.value).join(',') : accept.value;
    }
    const format = formatFor(value);
    const previous = headers[FORMAT_HEADER];
    // A changed multiValue replaces every viewer copy; a new value alone would leave the
    // second and later ones in place.
    headers[FORMAT_HEADER] = previous && previous.multiValue
        ? { value: format, multiValue: [{ value: format }] }
        : { value: format };
    return request;
}

// The format for an Accept value (a string, or undefined when there is none).
function formatFor(accept) {
    if (typeof accept !== 'string') {
        return 'jpeg';
    }
    const truncated = accept.length > MAX_ACCEPT;
    const elements = split(truncated ? accept.slice(0, MAX_ACCEPT) : accept, 44); // ','
    if (truncated) {
        elements.pop(); // possibly cut short: "image/avifx" must not read as image/avif
    }
    const state = { 'image/avif': 0, 'image/webp': 0 }; // 0 unlisted, 1 acceptable, -1 refused
    for (let i = 0; i < elements.length; i++) {
        const params = split(elements[i], 59); // ';'
        const range = params[0].trim().toLowerCase();
        if ((range !== 'image/avif' && range !== 'image/webp') || state[range] < 0) {
            continue;
        }
        const q = weight(params);
        if (q === 0) {
            state[range] = -1;
        } else if (q > 0) {
            state[range] = 1;
        }
    }
    if (state['image/avif'] > 0) {
        return 'avif';
    }
    return state['image/webp'] > 0 ? 'webp' : 'jpeg';
}

// The q of one element's parameters: 1 without one, -1 (ignore the element) when it is
// not a qvalue ("0" to "1" with at most three decimals).
function weight(params) {
    for (let i = 1; i < params.length; i++) {
        const eq = params[i].indexOf('=');
        if (eq >= 0 && params[i].slice(0, eq).trim().toLowerCase() === 'q') {
            const q = params[i].slice(eq + 1).trim();
            return /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(q) ? parseFloat(q) : -1;
        }
    }
    return 1;
}

// Splits on the separator (a character code) outside quoted strings.
function split(text, separator) {
    const parts = [];
    let start = 0;
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (quoted) {
            if (c === 92) {
                i++; // backslash: the next character is literal
            } else if (c === 34) {
                quoted = false;
            }
        } else if (c === 34) {
            quoted = true;
        } else if (c === separator) {
            parts.push(text.slice(start, i));
            start = i + 1;
        }
    }
    parts.push(text.slice(start));
    return parts;
}
