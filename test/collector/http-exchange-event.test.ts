/**
 * Captured exchange → http.v1 event (src/collector/http/exchange-event.ts: HttpEventWriter's Avro, read back by the
 * http schema), from chunk records through the real HttpCapture: exact events, wall-clock times, the socket's side
 * and ends, upgrades, and privacy: secrets sent in the query string, fragment, authority, headers, cookies and
 * bodies are in no field of the event, nor in its Avro bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionEnds } from '../../src/collector/connection-ends.js';
import { httpEventReader } from '../../src/collector/http/exchange-event.js';
import { httpKind } from '../../src/collector/http/index.js';
import { loadRegistry } from '../../src/common/avro.js';
import { HTTP, type HttpBatch } from '../../src/events/http.js';
import { capturedExchanges, httpEvents, observedSocket, type ExchangeBytes } from '../helpers/http.js';

const socket = observedSocket({ node: 'node-a', connId: 42n, cgroupId: 987654321n, pid: 4321, clientAddress: '10.1.0.5', clientPort: 40123, serverAddress: '10.1.0.9' });
/** Each request at 1000 ns (+10,000 per exchange), each response 4000 ns after it. */
const calls = (...pairs: Array<[request: string, response: string]>): ExchangeBytes[] =>
  pairs.map(([request, response], i) => ({ request, response, atNs: 1000n + BigInt(i) * 10_000n, durationNs: 4000n }));

describe('captured http exchange → http.v1 event', () => {
  it('maps an exchange exactly: connection id, path without its query, templated route, sizes, wall-clock times, duration', () => {
    const [exchange] = capturedExchanges(
      socket,
      calls(['POST /users/12345/orders?token=abc HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello', 'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok']),
    );
    // Kernel monotonic time → wall time: the context's clock, here 1 s later.
    const context = { nodeName: 'node-a', epoch: 'e7', toWallNs: (ns: bigint) => ns + 1_000_000_000n };
    assert.deepEqual(httpEventReader(context, loadRegistry().codec<HttpBatch>(HTTP.subject))(exchange!), {
      connection_id: 'node-a/e7/42',
      exchange_seq: 0,
      k8s_node_name: 'node-a',
      observer_side: 'client',
      outcome: 'complete',
      request_start_time_ns: 1_000_001_000n,
      request_end_time_ns: 1_000_001_000n,
      response_start_time_ns: 1_000_005_000n,
      response_end_time_ns: 1_000_005_000n,
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
      network_type: 'ipv4',
      client_address: '10.1.0.5',
      client_port: 40123,
      server_address: '10.1.0.9',
      server_port: 8080,
      process_pid: 4321,
      process_executable_name: null,
      cgroup_id: 987654321n,
    });
  });

  it('numbers exchanges, keeps an unknown method as _OTHER with the original, marks upgrades, and takes the side of the socket', () => {
    const events = httpEvents(
      { ...socket, side: 'server', serverAddress: 'fd00::9' },
      calls(
        ['GET /static/css/site.css HTTP/1.0\r\n\r\n', 'HTTP/1.0 304 Not Modified\r\n\r\n'],
        ['PURGE /cache/x HTTP/1.1\r\nHost: h\r\n\r\n', 'HTTP/1.1 204 No Content\r\n\r\n'],
        ['GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
      ),
    );
    assert.deepEqual(
      events.map((e) => [e.exchange_seq, e.observer_side, e.network_type, e.http_request_method, e.http_request_method_original, e.network_protocol_version, e.http_route, e.http_response_status_code, e.outcome]),
      [
        [0, 'server', 'ipv6', 'GET', null, '1.0', '/static/css/site.css', 304, 'complete'],
        [1, 'server', 'ipv6', '_OTHER', 'PURGE', '1.1', '/cache/x', 204, 'complete'],
        [2, 'server', 'ipv6', 'GET', null, '1.1', '/ws', 101, 'upgraded'],
      ],
    );
  });

  it('maps a request the connection closed before answering: outcome unanswered, the response fields null', () => {
    const [answered, unanswered] = httpEvents({ ...socket, side: 'server' }, [
      { request: 'GET /a/1 HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', atNs: 100n, durationNs: 50n },
      { request: 'PUT /a/2?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', atNs: 1000n, durationNs: 0n },
    ]);
    assert.deepEqual(unanswered, {
      ...answered,
      exchange_seq: 1,
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

  it('carries no byte of a secret sent in the query, fragment, authority, headers, cookies or body, in the event or its Avro bytes', () => {
    const secrets = ['q-S3CRETquery', 'f-S3CRETfragment', 'u-S3CRETuser', 'p-S3CRETpass', 'h-S3CRETheader', 'c-S3CRETcookie', 'b-S3CRETbody', 'r-S3CRETresponse', 's-S3CRETsetcookie'];
    const exchanges = capturedExchanges(
      socket,
      calls([
        `PUT http://${secrets[2]}:${secrets[3]}@shop.example/cart/items/7?session=${secrets[0]}#${secrets[1]} HTTP/1.1\r\n` +
          `Authorization: Bearer ${secrets[4]}\r\nCookie: id=${secrets[5]}\r\nContent-Length: ${secrets[6]!.length}\r\n\r\n${secrets[6]}`,
        `HTTP/1.1 200 OK\r\nSet-Cookie: s=${secrets[8]}\r\nContent-Length: ${secrets[7]!.length}\r\n\r\n${secrets[7]}`,
      ]),
    );
    // The message the http kind packs (its partition's), and the event it holds as the contract reads it.
    const registry = loadRegistry();
    const message = httpKind.packing({ nodeName: 'node-a', epoch: 'e1', firstConnId: 0n, toWallNs: (ns) => ns, connectionEnds: new ConnectionEnds() }, registry, 1).messageBuilder();
    message.add(exchanges[0]!);
    const bytes = message.seal();
    const codec = registry.codec<HttpBatch>(HTTP.subject);
    const [event] = codec.decodeFrom(bytes, codec).events;
    assert.equal(event!.url_path, '/cart/items/7');
    assert.equal(event!.http_route, '/cart/items/{id}');
    const text = JSON.stringify(event, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
    for (const secret of secrets) assert.equal(bytes.includes(Buffer.from(secret, 'latin1')), false, `${secret} in the Avro bytes`);
    assert.equal(text.includes('S3CRET'), false, `a secret in the event: ${text}`);
    assert.equal(bytes.includes(Buffer.from('S3CRET')), false);
  });
});
