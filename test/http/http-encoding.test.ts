/**
 * The http kind writes each exchange's HttpEvent as Avro itself (HttpEventWriter, no event object): its messages
 * must be the very bytes the http schema's encoder (avsc) wrote for the same exchanges before, and its partitions
 * the ones the connection id string gave. fixtures/http-encoding.json holds those, made with the encoder it replaced
 * (CapturedExchange -> toHttpEvent -> the schema) for test/helpers/http-edge-exchanges.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConnectionEnds } from '../../src/collector/connection-ends.js';
import { httpKind } from '../../src/collector/http/index.js';
import { loadRegistry } from '../../src/common/avro.js';
import { HTTP, type HttpBatch } from '../../src/events/http.js';
import { edgeHttpExchanges } from '../helpers/http-edge-exchanges.js';
import { capturedExchanges, observedSocket } from '../helpers/http.js';

interface Fixture {
  node: string;
  epoch: string;
  wall_offset_ns: string;
  partitions: number;
  edge: { exchanges: number; partitions: number[]; message: string };
}

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/http/fixtures/http-encoding.json', import.meta.url)), 'utf8')) as Fixture;
const registry = loadRegistry();
const codec = registry.codec<HttpBatch>(HTTP.subject);
const offsetNs = BigInt(fixture.wall_offset_ns);
const context = { nodeName: fixture.node, epoch: fixture.epoch, firstConnId: 0n, toWallNs: (ns: bigint) => ns + offsetNs, connectionEnds: new ConnectionEnds() };
const packing = () => httpKind.packing(context, registry, fixture.partitions);

describe('http encoding', () => {
  it('writes exchanges of every branch into the bytes and partitions of the schema encoder it replaced', () => {
    const { partitionOf, messageBuilder } = packing();
    const message = messageBuilder();
    const exchanges = edgeHttpExchanges();
    assert.equal(exchanges.length, fixture.edge.exchanges);
    const partitions = exchanges.map((exchange) => {
      message.add(exchange);
      return partitionOf(exchange);
    });
    assert.deepEqual(partitions, fixture.edge.partitions);
    assert.equal(message.seal().toString('hex'), fixture.edge.message);
  });

  it('reads back through the http schema (avsc) with the values of the exchanges', () => {
    const message = packing().messageBuilder();
    for (const exchange of edgeHttpExchanges()) message.add(exchange);
    const events = codec.decodeFrom(message.seal(), codec).events;
    assert.deepEqual(
      events.map((e) => [e.connection_id, e.exchange_seq, e.observer_side, e.outcome, e.http_request_method, e.http_request_method_original, e.network_protocol_version, e.url_path, e.http_route, e.http_response_status_code]),
      [
        ['node-ä.example/e7/1', 0, 'client', 'complete', 'POST', null, '1.1', '/users/12345/orders', '/users/{id}/orders', 201],
        ['node-ä.example/e7/1', 1, 'client', 'complete', 'GET', null, '1.1', '/', '/', 500],
        ['node-ä.example/e7/1', 2, 'client', 'complete', 'GET', null, '1.1', `/files/${'a'.repeat(90)}/${'b'.repeat(40)}`, '/files/{hash}/{hash}', 200],
        ['node-ä.example/e7/1', 3, 'client', 'complete', 'GET', null, '1.1', '/caf\xe9/men\xfc', '/caf\xe9/men\xfc', 200],
        ['node-ä.example/e7/1', 4, 'client', 'unanswered', 'DELETE', null, '1.1', '/a/b/c', '/a/b/c', null],
        ['node-ä.example/e7/9007199254741003', 0, 'server', 'complete', 'GET', null, '1.0', '/static/css/site.css', '/static/css/site.css', 304],
        ['node-ä.example/e7/9007199254741003', 1, 'server', 'complete', '_OTHER', 'PURGE', '1.1', '/cache/x', '/cache/x', 204],
        ['node-ä.example/e7/9007199254741003', 2, 'server', 'complete', 'HEAD', null, '1.1', '/big', '/big', 200],
        ['node-ä.example/e7/9007199254741003', 3, 'server', 'upgraded', 'GET', null, '1.1', '/ws', '/ws', 101],
        ['node-ä.example/e7/3', 0, 'client', 'complete', 'GET', null, '1.1', '/download/2024-01-31', '/download/{date}', 200],
        ['node-ä.example/e7/3', 1, 'client', 'upgraded', 'CONNECT', null, '1.1', '', '', 200],
        ['node-ä.example/e7/4', 0, 'server', 'complete', 'PUT', null, '1.1', '/upload/17', '/upload/{id}', 413],
        ['node-ä.example/e7/4', 1, 'server', 'unanswered', 'OPTIONS', null, '1.1', '*', '*', null],
      ],
    );
    const [download, , put, unanswered] = events.slice(9);
    assert.deepEqual(
      [download!.http_response_body_size, download!.http_response_header_size, download!.request_start_time_ns, download!.duration_ns, download!.cgroup_id, download!.process_pid, download!.server_address],
      [5_000_000_000n, 47n, offsetNs + 1_000_000n, 4_000n, 2n ** 40n, 2 ** 31 - 1, '10.255.0.1'],
    );
    assert.equal(put!.duration_ns, -2_000n);
    assert.deepEqual([unanswered!.response_start_time_ns, unanswered!.response_end_time_ns, unanswered!.http_response_header_size, unanswered!.http_response_body_size], [null, null, null, null]);
    const ipv6 = events[5]!;
    assert.deepEqual([ipv6.network_type, ipv6.client_address, ipv6.client_port, ipv6.server_address, ipv6.server_port, ipv6.process_pid, ipv6.cgroup_id], ['ipv6', 'fd00::1', 65535, 'fd00:0:0:ff::9', 1, null, 2n ** 63n - 1n]);
  });

  it('refuses what the schema refuses (a cgroup id beyond a long) and keeps the message it was refused from whole', () => {
    const message = packing().messageBuilder();
    const [good] = capturedExchanges(observedSocket(), [{ request: 'GET /a HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', atNs: 10n, durationNs: 5n }]);
    assert.throws(() => message.add({ ...good!, cgroupId: 2n ** 64n - 1n }), /invalid "long": 18446744073709551615/);
    message.add(good!);
    assert.equal(message.size, 1);
    assert.deepEqual(codec.decodeFrom(message.seal(), codec).events.map((event) => event.cgroup_id), [0n]);
  });
});
