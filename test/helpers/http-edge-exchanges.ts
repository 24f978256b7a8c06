/**
 * Captured exchanges that take every branch of an http.v1 event's encoding: both sides, IPv4 and IPv6 ends, every
 * outcome, known and extension methods, HTTP/1.0 and 1.1, null and present response fields, a negative duration,
 * longs beyond 32 and 53 bits (sizes, conn ids, cgroup ids, times), a pid of 0, and paths with bytes above 0x7f
 * (latin1 from the kernel: two UTF-8 bytes each in Avro) and longer than one varint byte's length.
 * test/http/http-encoding.test.ts holds the http kind's packing of them to the bytes in fixtures/http-encoding.json.
 */
import type { CapturedExchange } from '../../src/collector/http/capture.js';
import { capturedExchanges, observedSocket, type ExchangeBytes } from './http.js';

const at = (i: number, durationNs = 4_000n): Pick<ExchangeBytes, 'atNs' | 'durationNs'> => ({ atNs: 1_000_000n + BigInt(i) * 50_000n, durationNs });
const ok = (body: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

export function edgeHttpExchanges(): CapturedExchange[] {
  const longPath = `/files/${'a'.repeat(90)}/${'b'.repeat(40)}`;
  const downloadHead = 'HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n';
  return [
    ...capturedExchanges(observedSocket({ connId: 1n, cgroupId: 7n, pid: 1 }), [
      { request: 'POST /users/12345/orders?token=abc HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello', response: 'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok', ...at(0) },
      { request: 'GET / HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n', ...at(1) },
      { request: `GET ${longPath} HTTP/1.1\r\n\r\n`, response: ok('x'), ...at(2) },
      { request: 'GET /caf\xe9/men\xfc?x=\xe9 HTTP/1.1\r\n\r\n', response: ok(''), ...at(3) },
      { request: 'DELETE /a/b/c HTTP/1.1\r\n\r\n', ...at(4) },
    ]),
    ...capturedExchanges(observedSocket({ side: 'server', connId: 2n ** 53n + 11n, cgroupId: 2n ** 63n - 1n, pid: 0, clientAddress: 'fd00::1', serverAddress: 'fd00:0:0:ff::9', clientPort: 65535, serverPort: 1 }), [
      { request: 'GET /static/css/site.css HTTP/1.0\r\n\r\n', response: 'HTTP/1.0 304 Not Modified\r\n\r\n', ...at(0) },
      { request: 'PURGE /cache/x HTTP/1.1\r\nHost: h\r\n\r\n', response: 'HTTP/1.1 204 No Content\r\n\r\n', ...at(1) },
      { request: 'HEAD /big HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 200 OK\r\nContent-Length: 9999999999\r\n\r\n', ...at(2) },
      { request: 'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', response: 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', ...at(3) },
    ]),
    ...capturedExchanges(observedSocket({ connId: 3n, cgroupId: 2n ** 40n, pid: 2 ** 31 - 1, serverAddress: '10.255.0.1' }), [
      // A body of 5 GB of which the copy kept the head: its size is a long beyond 32 bits.
      { request: 'GET /download/2024-01-31 HTTP/1.1\r\n\r\n', response: `${downloadHead}abc`, ...at(0), responseCallBytes: downloadHead.length + 5_000_000_000 },
      { request: 'CONNECT db.internal:5432 HTTP/1.1\r\n\r\n', response: 'HTTP/1.1 200 Connection established\r\n\r\n', ...at(1) },
    ]),
    // The server answered before the request's body came: a negative duration.
    ...capturedExchanges(observedSocket({ connId: 4n, side: 'server', pid: 77 }), [
      { request: 'PUT /upload/17 HTTP/1.1\r\nContent-Length: 0\r\n\r\n', response: 'HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n', atNs: 5_000_000n, durationNs: -2_000n },
      { request: 'OPTIONS * HTTP/1.1\r\n\r\n', ...at(9) },
    ]),
  ];
}
