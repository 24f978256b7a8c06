import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { createDropCounter, startTelemetry } from '../../src/common/telemetry.js';
import { OTHER_ROUTE, ROUTE_DROP_REMEDIES, RouteCatalog } from '../../src/collector/http/route-catalog.js';
import { RouteTemplater, TRUNCATED, urlPath } from '../../src/collector/http/route.js';
import { TestReader } from '../helpers/telemetry.js';

/** A seeded generator (mulberry32), so that a failing case can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATH_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%/';
function text(next: () => number, alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(next() * alphabet.length)];
  return out;
}
/** Every latin1 byte but the ones a request line cannot hold (space, CR, LF). */
const SECRET_BYTES = Array.from({ length: 256 }, (_, c) => String.fromCharCode(c))
  .filter((c) => c !== ' ' && c !== '\r' && c !== '\n')
  .join('');

const templater = (rules: ConstructorParameters<typeof RouteTemplater>[0] = [], maxPathBytes = 2048) => new RouteTemplater(rules, maxPathBytes);

describe('urlPath', () => {
  it('keeps the path of each target form and nothing of its query, fragment or authority', () => {
    const cases: Array<[string, string]> = [
      ['/', '/'],
      ['/users/123', '/users/123'],
      ['/search?q=secret&token=abc', '/search'],
      ['/a/b/?', '/a/b/'],
      ['/page#section?x', '/page'],
      ['/p%20q/r%3Fs?t=%20', '/p%20q/r%3Fs'],
      ['http://user:pass@example.com:8080/p/q?x=1', '/p/q'],
      ['https://example.com', '/'],
      ['http://example.com?secret=1', '/'],
      ['http://example.com#frag', '/'],
      ['HTTP+x.1-y://h/z', '/z'],
      ['example.com:443', ''],
      ['*', '*'],
      ['', ''],
      ['?secret', ''],
      ['1http://h/p', ''],
      ['http:/h/p', ''],
    ];
    for (const [target, path] of cases) assert.equal(urlPath(target, 2048), path, target);
  });

  it('never lets any byte of a query string or fragment through (10,000 random targets)', () => {
    const next = random(9);
    const route = templater();
    for (let n = 0; n < 10_000; n++) {
      const path = '/' + text(next, PATH_CHARS, Math.floor(next() * 40));
      const secret = text(next, SECRET_BYTES, 16 + Math.floor(next() * 16));
      const separator = next() < 0.5 ? '?' : '#';
      const form = next();
      const target =
        form < 0.6
          ? `${path}${separator}${secret}`
          : form < 0.8
            ? `http://h.example${path}${separator}${secret}`
            : `http://u:${secret.replace(/[/?#@]/g, '=')}@h.example${path}?${secret}`; // userinfo cannot hold "/?#@"
      const secretsSent = form < 0.8 ? [secret] : [secret, secret.replace(/[/?#@]/g, '=')];
      const kept = urlPath(target, 2048);
      assert.equal(kept, path, JSON.stringify(target));
      for (const sent of secretsSent) assert.ok(!kept.includes(sent) && !route.route(kept).includes(sent), JSON.stringify(target));
    }
  });

  it('cuts a path longer than the bound to exactly the bound, marked', () => {
    const long = '/' + 'a'.repeat(3000);
    const cut = urlPath(`${long}?q=1`, 2048);
    assert.equal(cut.length, 2048);
    assert.equal(cut, long.slice(0, 2048 - TRUNCATED.length) + TRUNCATED);
    assert.equal(urlPath('/' + 'a'.repeat(2047), 2048), '/' + 'a'.repeat(2047), 'a path of exactly the bound is kept whole');
    assert.equal(urlPath('http://h/' + 'b'.repeat(100), 64), '/' + 'b'.repeat(52) + TRUNCATED);
  });
});

describe('RouteTemplater', () => {
  it('templates ids, UUIDs, dates, hashes and tokens, and keeps everything else', () => {
    const cases: Array<[string, string]> = [
      ['/users/123', '/users/{id}'],
      ['/users/123/', '/users/{id}/'],
      ['/v1/users', '/v1/users'],
      ['/2024/report', '/{id}/report'],
      ['/orders/12-345-678', '/orders/{id}'],
      ['/orders/1_000.5', '/orders/{id}'],
      ['/orders/1--2', '/orders/1--2'],
      ['/orders/-12', '/orders/-12'],
      ['/orders/12-', '/orders/12-'],
      ['/items/550e8400-e29b-41d4-a716-446655440000', '/items/{uuid}'],
      ['/items/550E8400-E29B-41D4-A716-446655440000/x', '/items/{uuid}/x'],
      ['/items/550e8400-e29b-41d4-a716-44665544000g', '/items/550e8400-e29b-41d4-a716-44665544000g'],
      ['/items/550e8400e29b-41d4-a716-4466554400000', '/items/550e8400e29b-41d4-a716-4466554400000'],
      ['/day/2024-02-29', '/day/{date}'],
      ['/day/2024-13-01', '/day/{id}'],
      ['/day/2024-12-00', '/day/{id}'],
      ['/commit/3f786850e387550fdab836ed7e6dc881de23001b', '/commit/{hash}'],
      ['/md5/d41d8cd98f00b204e9800998ecf8427e', '/md5/{hash}'],
      ['/sha256/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855', '/sha256/{hash}'],
      ['/span/00f067aa0ba902b7', '/span/{hash}'],
      ['/short/00f067aa0ba902b', '/short/00f067aa0ba902b'],
      ['/cafe/beef/deadbeef', '/cafe/beef/deadbeef'],
      ['/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_1', '/t/{token}'],
      ['/t/aGVsbG8gd29ybGQhIQ==', '/t/{token}'],
      ['/t/Zm9vYmFyYmF6cXV4MTIz', '/t/{token}'],
      ['/t/my-product-name-2', '/t/my-product-name-2'],
      ['/t/AbcdefghijklmnoP', '/t/AbcdefghijklmnoP'],
      ['/t/Abcdefghijklmn1', '/t/Abcdefghijklmn1'],
      ['/t/Abcdefghijklmno1', '/t/{token}'],
      ['/mail/a%40b.com', '/mail/a%40b.com'],
      ['/a/{id}/b', '/a/{id}/b'],
      ['/users/42/orders/7', '/users/{id}/orders/{id}'],
      ['//x//1', '//x//{id}'],
      ['/', '/'],
      ['', ''],
      ['*', '*'],
    ];
    const route = templater();
    for (const [path, expected] of cases) assert.equal(route.route(path), expected, path);
  });

  it('returns the path itself when nothing is templated', () => {
    const path = ['', 'api', 'v1', 'users'].join('/');
    assert.equal(templater().route(path), path);
  });

  it('applies the first matching user rule before the built-in templating', () => {
    const route = templater([
      { pattern: '/api/v1/orders/*/items', route: '/api/v1/orders/{order}/items' },
      { pattern: '/api/v1/orders/**', route: '/api/v1/orders/{rest}' },
      { pattern: '/**/download', route: '/{any}/download' },
      { pattern: '/*/report', route: '/{year}/report' },
      { pattern: '/static/**/style.css', route: '/static/{css}' },
      { pattern: '/**', route: '/{everything}' },
    ]);
    const cases: Array<[string, string]> = [
      ['/api/v1/orders/42/items', '/api/v1/orders/{order}/items'],
      ['/api/v1/orders/42/items/7', '/api/v1/orders/{rest}'],
      ['/api/v1/orders', '/api/v1/orders/{rest}'],
      ['/api/v1/orders//items', '/api/v1/orders/{rest}'],
      ['/a/b/c/download', '/{any}/download'],
      ['/download', '/{any}/download'],
      ['/2024/report', '/{year}/report'],
      ['/static/x/y/style.css', '/static/{css}'],
      ['/static/style.css', '/static/{css}'],
      ['/static/x/y/site.css', '/{everything}'],
      ['/', '/{everything}'],
    ];
    for (const [path, expected] of cases) assert.equal(route.route(path), expected, path);
    assert.equal(templater([{ pattern: '/a/*', route: '/a/{x}' }]).route('/b/1'), '/b/{id}', 'no rule matched: built-in templating');
    assert.equal(templater([{ pattern: '/a/*', route: '/a/{x}' }]).route('/a/1/2'), '/a/{id}/{id}', '* is exactly one segment');
  });

  it('refuses a rule the configuration would have rejected, naming its index', () => {
    assert.throws(() => templater([{ pattern: '/ok', route: '/ok' }, { pattern: '/a/**/b/**', route: '/x' }]), {
      message: 'route rule 1: pattern "/a/**/b/**": expected at most one "**"',
    });
  });

  it('bounds a route that placeholders made longer than http.maxPathBytes', () => {
    const path = '/1'.repeat(32); // 64 bytes, each "1" becomes "{id}"
    assert.equal(templater([], 64).route(path), '/{id}'.repeat(10) + '/{i' + TRUNCATED);
    assert.equal(templater([], 64).route(path).length, 64);
  });
});

describe('RouteCatalog', () => {
  it('keeps exactly maxRoutesPerService distinct routes per service, then reports {other}, counted exactly', async () => {
    const reader = new TestReader();
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0, readers: [reader] });
    try {
      const logged: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line).msg) });
      const drops = createDropCounter(telemetry.meter('test'), logger, { name: 'collector.http.routes', remedies: ROUTE_DROP_REMEDIES });
      const catalog = new RouteCatalog({ maxRoutesPerService: 3, maxServices: 2, drops });

      assert.deepEqual(['/a', '/b', '/a', '/c', '/d', '/b', '/e', '/c'].map((r) => catalog.admit('shop', r)), ['/a', '/b', '/a', '/c', OTHER_ROUTE, '/b', OTHER_ROUTE, '/c']);
      assert.deepEqual(['/d', '/e', '/f', '/g'].map((r) => catalog.admit('cart', r)), ['/d', '/e', '/f', OTHER_ROUTE], 'each service has its own cap');
      assert.deepEqual(['/a', '/z'].map((r) => catalog.admit('pay', r)), [OTHER_ROUTE, OTHER_ROUTE], 'a third service is past maxServices');
      assert.equal(catalog.admit('shop', '/a'), '/a');

      assert.deepEqual(await reader.sum('sidecarless.collector.http.routes.drops', 'reason'), { route_cap: 3, service_cap: 2 });
      assert.match(logged[0]!, /route_cap: a service has more distinct routes than http\.maxRoutesPerService: add http\.routeRules/);
    } finally {
      await telemetry.shutdown();
    }
  });
});
