/**
 * Exchange → http.v1 event (src/collector/http/exchange-event.ts): exact events from bytes through the real parser,
 * the route cap per server end, upgrades, and privacy: secrets sent in the query string, fragment, authority,
 * headers, cookies and bodies are in no field of the event, nor in its Avro bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExchangeEvents, type HttpConnection } from '../../src/collector/http/exchange-event.js';
import type { HttpExchange, HttpRequestSeen } from '../../src/collector/http/parser.js';
import { OTHER_ROUTE, RouteCatalog } from '../../src/collector/http/route-catalog.js';
import { RouteTemplater } from '../../src/collector/http/route.js';
import { loadRegistry } from '../../src/common/avro.js';
import { bindCodec } from '../../src/events/contract.js';
import { HTTP } from '../../src/events/http.js';
import { parsedExchanges } from '../helpers/http.js';

const connection: HttpConnection = {
  connection_id: 'node-a/e7/42',
  k8s_node_name: 'node-a',
  network_type: 'ipv4',
  client_address: '10.1.0.5',
  client_port: 40123,
  server_address: '10.1.0.9',
  server_port: 8080,
  process_pid: 4321,
  process_executable_name: 'node',
  cgroup_id: 987654321n,
};

/** Exchanges of a client socket that sent each request at 1000 ns (+10,000 per exchange) and read its response 4000 ns after. */
function exchanges(...pairs: Array<[request: string, response: string]>): Array<HttpExchange | HttpRequestSeen> {
  return parsedExchanges('client', pairs.map(([request, response], i) => ({ request, response, atNs: 1000n + BigInt(i) * 10_000n, durationNs: 4000n })));
}

function mapper(maxRoutesPerService = 200, drops: string[] = []): ExchangeEvents {
  const catalog = new RouteCatalog({ maxRoutesPerService, maxServices: 10, drops: { add: (reason: string) => void drops.push(reason) } });
  return new ExchangeEvents({ templater: new RouteTemplater([{ pattern: '/static/**', route: '/static/{path}' }], 64), catalog, maxPathBytes: 64 });
}

describe('http exchange → http.v1 event', () => {
  it('maps a paired exchange exactly: path without its query, templated route, sizes, kernel times, duration', () => {
    const [exchange] = exchanges([
      'POST /users/12345/orders?token=abc HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello',
      'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
    ]);
    assert.deepEqual(mapper().toEvent(exchange!, connection, 3), {
      exchange_seq: 3,
      observer_side: 'client',
      outcome: 'complete',
      request_start_time_ns: 1000n,
      request_end_time_ns: 1000n,
      response_start_time_ns: 5000n,
      response_end_time_ns: 5000n,
      duration_ns: 4000n,
      http_request_method: 'POST',
      http_request_method_original: null,
      network_protocol_version: '1.1',
      url_path: '/users/12345/orders',
      http_route: '/users/{id}/orders',
      http_response_status_code: 201,
      http_request_header_size: 78n,
      http_request_body_size: 5n,
      http_response_header_size: 43n,
      http_response_body_size: 2n,
      network_transport: 'tcp',
      ...connection, // every field of the connection, as it was
    });
  });

  it('applies the route rules, keeps an unknown method as _OTHER with the original, and marks upgrades', () => {
    const events = exchanges(
      ['GET /static/css/site.css HTTP/1.0\r\n\r\n', 'HTTP/1.0 304 Not Modified\r\n\r\n'],
      ['PURGE /cache/x HTTP/1.1\r\nHost: h\r\n\r\n', 'HTTP/1.1 204 No Content\r\n\r\n'],
      ['GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
    ).map((exchange, seq) => mapper().toEvent(exchange, connection, seq));
    assert.deepEqual(
      events.map((e) => [e.http_request_method, e.http_request_method_original, e.network_protocol_version, e.url_path, e.http_route, e.http_response_status_code, e.outcome]),
      [
        ['GET', null, '1.0', '/static/css/site.css', '/static/{path}', 304, 'complete'],
        ['_OTHER', 'PURGE', '1.1', '/cache/x', '/cache/x', 204, 'complete'],
        ['GET', null, '1.1', '/ws', '/ws', 101, 'upgraded'],
      ],
    );
  });

  it('reports a request the connection closed before answering: outcome unanswered, the response fields null', () => {
    const [exchange, unanswered] = parsedExchanges('server', [
      { request: 'GET /a/1 HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', atNs: 100n, durationNs: 50n },
      { request: 'PUT /a/2?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', atNs: 1000n, durationNs: 0n },
    ]);
    assert.equal('status' in exchange!, true);
    const event = mapper().toEvent(unanswered!, connection, 1);
    assert.deepEqual(event, {
      ...mapper().toEvent(exchange!, connection, 1),
      observer_side: 'server',
      outcome: 'unanswered',
      request_start_time_ns: 1000n,
      request_end_time_ns: 1000n,
      response_start_time_ns: null,
      response_end_time_ns: null,
      duration_ns: null,
      http_request_method: 'PUT',
      url_path: '/a/2',
      http_route: '/a/{id}',
      http_response_status_code: null,
      http_request_header_size: 44n,
      http_request_body_size: 3n,
      http_response_header_size: null,
      http_response_body_size: null,
    });
  });

  it('caps routes per server end: the third distinct route of one server is {other}, counted; another server has its own', () => {
    const drops: string[] = [];
    const events = mapper(2, drops);
    const [a, b, c] = exchanges(
      ['GET /a HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
      ['GET /b HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
      ['GET /c HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    );
    const other = { ...connection, server_port: 9090 };
    assert.deepEqual(
      [events.toEvent(a!, connection, 0), events.toEvent(b!, connection, 1), events.toEvent(c!, connection, 2), events.toEvent(c!, other, 0)].map((e) => e.http_route),
      ['/a', '/b', OTHER_ROUTE, '/c'],
    );
    assert.deepEqual(drops, ['route_cap']);
  });

  it('carries no byte of a secret sent in the query, fragment, authority, headers, cookies or body, in the event or its Avro bytes', () => {
    const secrets = ['q-S3CRETquery', 'f-S3CRETfragment', 'u-S3CRETuser', 'p-S3CRETpass', 'h-S3CRETheader', 'c-S3CRETcookie', 'b-S3CRETbody', 'r-S3CRETresponse', 's-S3CRETsetcookie'];
    const [exchange] = exchanges([
      `PUT http://${secrets[2]}:${secrets[3]}@shop.example/cart/items/7?session=${secrets[0]}#${secrets[1]} HTTP/1.1\r\n` +
        `Authorization: Bearer ${secrets[4]}\r\nCookie: id=${secrets[5]}\r\nContent-Length: ${secrets[6]!.length}\r\n\r\n${secrets[6]}`,
      `HTTP/1.1 200 OK\r\nSet-Cookie: s=${secrets[8]}\r\nContent-Length: ${secrets[7]!.length}\r\n\r\n${secrets[7]}`,
    ]);
    const event = mapper().toEvent(exchange!, connection, 0);
    assert.equal(event.url_path, '/cart/items/7');
    assert.equal(event.http_route, '/cart/items/{id}');
    const text = JSON.stringify(event, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
    const codec = bindCodec(loadRegistry(), HTTP);
    const builder = codec.builder();
    builder.add(event);
    const bytes = builder.seal();
    for (const secret of secrets) {
      assert.equal(text.includes('S3CRET'), false, `${secret} in the event: ${text}`);
      assert.equal(bytes.includes(Buffer.from(secret, 'latin1')), false, `${secret} in the Avro bytes`);
    }
    assert.equal(bytes.includes(Buffer.from('S3CRET')), false);
    assert.deepEqual(codec.decode(bytes).map((decoded) => ({ ...decoded })), [event], 'the event round-trips through the contract');
  });
});
