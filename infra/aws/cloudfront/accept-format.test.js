// Tests for accept-format.js, the CloudFront Function that reduces Accept to
// x-rendition-format. Run: node --test infra/aws/cloudfront/ (scripts/lint-infra.sh runs it).
//
// The function runs here in a bare vm context, as CloudFront loads it: no require, no
// module, no process; only what it defines itself. Accept values are the ones current
// browsers and curl send for images (MDN's "List of default Accept values", checked
// against captured requests).
'use strict';

const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const vm = require('node:vm');

const SOURCE = path.join(__dirname, 'accept-format.js');
const TEMPLATE = path.join(__dirname, '..', 'template.yaml');
const CODE = fs.readFileSync(SOURCE, 'utf8');

function load() {
    const context = vm.createContext({});
    vm.runInContext(CODE, context, { filename: SOURCE });
    return { handler: context.handler, formatFor: context.formatFor };
}
const { handler, formatFor } = load();

function viewerRequest(headers) {
    return {
        version: '1.0',
        context: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'test' },
        viewer: { ip: '198.51.100.11' },
        request: {
            method: 'GET',
            uri: '/derived/photos/cat.jpg/1f2e3d4c/md.webp',
            querystring: { exp: { value: '1767225600' }, sig: { value: 'abc' } },
            headers,
            cookies: {},
        },
    };
}

// The header the function sets, for a request with these headers.
function formatHeader(headers) {
    return handler(viewerRequest(headers)).headers['x-rendition-format'];
}

const BROWSERS = [
    ['Chrome and Edge 121+ (MDN)', 'image/avif,image/webp,image/apng,image/*,*/*;q=0.8', 'avif'],
    ['Chrome 131+ (captured)', 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8', 'avif'],
    ['Firefox 128+', 'image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5', 'avif'],
    ['Firefox 92-127', 'image/avif,image/webp,*/*', 'avif'],
    ['Safari 17+', 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5', 'avif'],
    ['Safari 14-16 (Big Sur, no AVIF)', 'image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5', 'webp'],
    ['Safari before Big Sur', 'image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5', 'jpeg'],
    ['Firefox 65-91', 'image/webp,*/*', 'webp'],
    ['curl', '*/*', 'jpeg'],
];

for (const [name, accept, want] of BROWSERS) {
    test(`${name}: ${want}`, () => {
        assert.deepStrictEqual({ ...formatHeader({ accept: { value: accept } }) }, { value: want });
    });
}

test('no Accept header: jpeg', () => {
    assert.strictEqual(formatHeader({ host: { value: 'img.example.com' } }).value, 'jpeg');
    assert.strictEqual(formatFor(undefined), 'jpeg');
    assert.strictEqual(formatFor(''), 'jpeg');
});

test('wildcards alone never pick a modern format', () => {
    for (const accept of ['*/*', 'image/*', 'image/*,*/*;q=0.8', '*/*;q=1, image/*;q=1']) {
        assert.strictEqual(formatFor(accept), 'jpeg', accept);
    }
});

test('q=0 refuses a type', () => {
    assert.strictEqual(formatFor('image/avif;q=0'), 'jpeg');
    assert.strictEqual(formatFor('image/avif;q=0,image/webp'), 'webp');
    assert.strictEqual(formatFor('image/avif;q=0.000,image/webp;q=0,*/*'), 'jpeg');
    assert.strictEqual(formatFor('image/avif,image/webp,image/apng,image/*,*/*;q=0.8,image/avif;q=0'), 'webp');
    assert.strictEqual(formatFor('image/avif;q=0,image/avif;q=1'), 'jpeg');
});

test('server order decides among acceptable types, not the q order', () => {
    assert.strictEqual(formatFor('image/webp;q=1,image/avif;q=0.001'), 'avif');
    assert.strictEqual(formatFor('image/jpeg,image/webp;q=0.1'), 'webp');
});

test('case, whitespace and other parameters', () => {
    assert.strictEqual(formatFor('  IMAGE/AVIF ; Q=0.5 , */*'), 'avif');
    assert.strictEqual(formatFor('Image/WebP\t;\tq=1.000'), 'webp');
    assert.strictEqual(formatFor('image/avif;profile=baseline;q=0.9;ext=1'), 'avif');
    assert.strictEqual(formatFor(' , ,image/webp,,'), 'webp');
});

test('a malformed q ignores the element', () => {
    for (const q of ['2', '1.5', '-1', '0.0001', 'abc', '', '1.001']) {
        assert.strictEqual(formatFor(`image/avif;q=${q},image/webp;q=0.5`), 'webp', `q=${q}`);
    }
});

test('separators inside quoted strings do not split', () => {
    assert.strictEqual(formatFor('text/plain;x="a, image/avif, b"'), 'jpeg');
    assert.strictEqual(formatFor('image/avif;x="\\";q=0",*/*'), 'avif');
    assert.strictEqual(formatFor('image/webp;x="a;q=0"'), 'webp');
});

test('repeated Accept lines count as one list', () => {
    const accept = { value: '*/*', multiValue: [{ value: '*/*' }, { value: 'image/webp' }] };
    assert.strictEqual(formatHeader({ accept }).value, 'webp');
    const refused = { value: 'image/avif', multiValue: [{ value: 'image/avif' }, { value: 'image/avif;q=0' }] };
    assert.strictEqual(formatHeader({ accept: refused }).value, 'jpeg');
});

test('a 100 KB Accept: only the first 2048 characters count, whole elements only', () => {
    const filler = 'image/png,'.repeat(10240); // 100 KiB
    assert.strictEqual(formatHeader({ accept: { value: 'image/avif,' + filler } }).value, 'avif');
    // Listed beyond the first 2048 characters: not read.
    assert.strictEqual(formatHeader({ accept: { value: filler + 'image/avif' } }).value, 'jpeg');
    // An element cut at character 2048 is dropped, not read as what its prefix says.
    const head = 'x'.repeat(2048 - 'image/avif'.length - 1) + ',';
    assert.strictEqual(formatFor(head + 'image/avifx'), 'jpeg');
    assert.strictEqual(formatFor(head + 'image/avif'), 'avif'); // exactly 2048: whole
    assert.strictEqual(formatFor(head + 'image/avif;q=0.5'), 'jpeg');
    // No separator at all: one huge element, nothing readable.
    assert.strictEqual(formatFor('image/avif' + ' '.repeat(100000)), 'jpeg');
});

test('a viewer cannot choose the format by sending the header', () => {
    assert.strictEqual(formatHeader({ 'x-rendition-format': { value: 'gif' } }).value, 'jpeg');
    const spoofed = {
        accept: { value: 'image/webp' },
        'x-rendition-format': { value: 'avif', multiValue: [{ value: 'avif' }, { value: 'gif' }] },
    };
    // Every viewer copy replaced: CloudFront applies a changed multiValue as a whole.
    assert.deepStrictEqual(JSON.parse(JSON.stringify(formatHeader(spoofed))),
        { value: 'webp', multiValue: [{ value: 'webp' }] });
});

test('everything else in the request is left as it was', () => {
    const headers = {
        accept: { value: 'image/avif,*/*' },
        host: { value: 'img.example.com' },
        'user-agent': { value: 'Mozilla/5.0' },
        'accept-language': { value: 'en', multiValue: [{ value: 'en' }, { value: 'de' }] },
    };
    const event = viewerRequest(headers);
    const before = JSON.parse(JSON.stringify(event.request));
    const returned = handler(event);
    assert.strictEqual(returned, event.request);
    const after = JSON.parse(JSON.stringify(returned));
    assert.deepStrictEqual(after.headers['x-rendition-format'], { value: 'avif' });
    delete after.headers['x-rendition-format'];
    assert.deepStrictEqual(after, before);
});

test('any input gives one of the three values (deterministic random Accept strings)', () => {
    const atoms = ['image/avif', 'image/webp', 'IMAGE/AVIF', 'image/*', '*/*', 'image/png', ';q=0', ';q=1',
        ';q=0.5', ';q=', ';q=2', ',', ',', ' ', '\t', '"', '\\', ';', '=', 'image/avif;q=0', '\u00e9', '\u0000'];
    let seed = 0x2545f491;
    const next = () => {
        seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
        return (seed >>> 0) % atoms.length;
    };
    for (let i = 0; i < 5000; i++) {
        let accept = '';
        const n = next() * 8;
        for (let j = 0; j < n; j++) accept += atoms[next()];
        const value = formatHeader({ accept: { value: accept } }).value;
        assert.ok(['avif', 'webp', 'jpeg'].includes(value), `${JSON.stringify(accept)} gave ${value}`);
    }
});

test('the code fits CloudFront Functions: under 10 KB, no modules', () => {
    assert.ok(Buffer.byteLength(CODE) < 10240, `${Buffer.byteLength(CODE)} bytes`);
    assert.doesNotMatch(CODE, /\brequire\s*\(|\bimport\b|\bexport\b|\bmodule\b|\bprocess\b|\bsetTimeout\b|\beval\b/);
    assert.match(CODE, /^function handler\(event\) \{$/m);
});

// The block scalar under "FunctionCode: |" in template.yaml, as YAML reads it (clip
// chomping: one final newline). Indentation-based: no YAML library, no npm dependency.
function inlinedCode(yaml) {
    const lines = yaml.split('\n');
    const starts = lines.flatMap((line, i) => (/^\s*FunctionCode:/.test(line) ? [i] : []));
    assert.strictEqual(starts.length, 1, 'template.yaml should have one FunctionCode');
    const start = starts[0];
    assert.match(lines[start], /^\s*FunctionCode: \|$/, 'FunctionCode should be a "|" block scalar');
    const keyIndent = lines[start].search(/\S/);
    const body = [];
    for (let i = start + 1; i < lines.length; i++) {
        if (lines[i].trim() !== '' && lines[i].search(/\S/) <= keyIndent) break;
        body.push(lines[i]);
    }
    while (body.length && body[body.length - 1].trim() === '') body.pop();
    assert.ok(body.length, 'FunctionCode is empty');
    const indent = body[0].search(/\S/);
    return body.map((line) => {
        if (line.trim() === '') return '';
        assert.ok(line.search(/\S/) >= indent, `less indented than the block: ${JSON.stringify(line)}`);
        return line.slice(indent);
    }).join('\n') + '\n';
}

test('template.yaml inlines exactly this file', () => {
    const inlined = inlinedCode(fs.readFileSync(TEMPLATE, 'utf8'));
    assert.strictEqual(inlined, CODE,
        'AcceptFormatFunction.FunctionCode in infra/aws/template.yaml differs from accept-format.js: paste the file in again');
});
