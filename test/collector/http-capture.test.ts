/**
 * HttpCapture without a kernel: chunk records as bpf/http.bpf.c writes them (decoded), through the per-connection
 * parsers to exchanges; which time stands for each call, when closed and idle connections end, and the bounds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpCapture, type CapturedExchange } from '../../src/collector/http/capture.js';
import { HTTP_CHUNK_RECORD, HttpChunkFlag, HttpDirection, type HttpChunkEnds, type HttpChunkRecord } from '../../src/ebpf/records/http-chunk.js';
import { RecordType } from '../../src/ebpf/records/header.js';

/** The ends every record of these connections carries (the capture reads them once per connection). */
const ENDS: HttpChunkEnds = { side: 2, clientAddress: '10.0.0.1', clientPort: 40000, serverAddress: '10.0.0.2', serverPort: 80 };
const ends = () => ENDS;

const REQUEST = 'GET /users/42?token=s3cret HTTP/1.1\r\nHost: a\r\n\r\n';
const RESPONSE = 'HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!';

function chunk(connId: bigint, direction: 'sent' | 'received', text: string, startNs: bigint, endNs: bigint, length = text.length): HttpChunkRecord {
  return { monotonicNs: endNs, connId, cgroupId: 3n, callStartNs: startNs, length, pid: 77, tid: 78, direction: HttpDirection[direction], flags: 0, data: Buffer.from(text, 'latin1') };
}

function capture(options: { maxConnections?: number; idleNs?: bigint; firstConnId?: bigint } = {}): { capture: HttpCapture; exchanges: CapturedExchange[] } {
  const exchanges: CapturedExchange[] = [];
  const made = new HttpCapture({ maxConnections: options.maxConnections ?? 10, idleNs: options.idleNs ?? 1000n, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 200, maxRouteServices: 1000, firstConnId: options.firstConnId ?? 0n }, (exchange) =>
    exchanges.push(exchange),
  );
  return { capture: made, exchanges };
}

/**
 * The records laid out as in a ring, back to back at 8-byte alignment, in one buffer: every byte between a record's
 * copied bytes and the next record's header is an LF or a space, which a parser reading past its record would take
 * for a line end or a request line's separator. Each record's ends are ENDS (IPv4: v4-mapped).
 */
function ringOf(records: HttpChunkRecord[]): { view: DataView; at: Array<[offset: number, size: number]> } {
  const o = HTTP_CHUNK_RECORD.offsets;
  const sizes = records.map((record) => HTTP_CHUNK_RECORD.size + record.data.length);
  const bytes = Buffer.alloc(sizes.reduce((sum, size) => sum + ((size + 8) & ~7), 0), '\n \n ');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const at: Array<[number, number]> = [];
  let offset = 0;
  records.forEach((record, i) => {
    const size = sizes[i]!;
    bytes.fill(0, offset, offset + HTTP_CHUNK_RECORD.size);
    view.setUint16(offset, RecordType.httpChunk, true);
    view.setUint16(offset + 2, HTTP_CHUNK_RECORD.version, true);
    view.setUint32(offset + 4, size, true);
    view.setBigUint64(offset + 8, record.monotonicNs, true);
    view.setBigUint64(offset + o.conn_id, record.connId, true);
    view.setBigUint64(offset + o.cgroup_id, record.cgroupId, true);
    view.setBigUint64(offset + o.call_start_ns, record.callStartNs, true);
    view.setBigUint64(offset + o.length, BigInt(record.length), true);
    view.setUint32(offset + o.pid, record.pid, true);
    view.setUint32(offset + o.tid, record.tid, true);
    view.setUint32(offset + o.copied, record.data.length, true);
    view.setUint8(offset + o.direction, record.direction);
    view.setUint16(offset + o.client_port, ENDS.clientPort, true);
    view.setUint16(offset + o.server_port, ENDS.serverPort, true);
    view.setUint8(offset + o.side, ENDS.side);
    bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], offset + o.client_addr);
    bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], offset + o.server_addr);
    record.data.copy(bytes, offset + o.data);
    at.push([offset, size]);
    offset += (size + 8) & ~7;
  });
  return { view, at };
}

describe('HttpCapture', () => {
  it('reads ring records in place into the exchanges the same records make decoded, never past a record\'s bytes', () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    const records = [
      // A request line and headers split across calls, lines cut where a reader past them would find their end
      // (one short, one long: the parser scans a line's first bytes itself, then asks Buffer.indexOf).
      chunk(8n, 'received', 'GET /a/1?q=x HT', 10n, 11n),
      chunk(8n, 'received', `TP/1.1\r\nHost: ${'h'.repeat(100)}`, 12n, 13n),
      chunk(8n, 'received', `\r\nX-Long: ${'y'.repeat(100)}\r\n\r\n`, 14n, 15n),
      chunk(8n, 'sent', RESPONSE, 20n, 21n),
      // A method and target with no space after them in the copy: the rest of the line comes with the next call.
      chunk(8n, 'received', 'PUT /b', 30n, 31n),
      chunk(8n, 'received', ' HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', 32n, 33n),
      // A chunked body in one call the copy cut (its framing counts as body), resumed by the next response.
      chunk(8n, 'sent', `${chunked}5\r\nhel`, 40n, 41n, chunked.length + 100),
      chunk(8n, 'received', REQUEST, 50n, 51n),
      chunk(8n, 'sent', RESPONSE, 60n, 61n),
    ];
    const decoded = capture();
    for (const record of records) decoded.capture.add(record, ends);
    const inPlace = capture();
    const { view, at } = ringOf(records);
    for (const [offset, size] of at) inPlace.capture.record(view, offset, size);
    for (const { capture: c } of [decoded, inPlace]) {
      c.connectionClosed(8n);
      c.tick(0n);
      c.tick(0n);
    }
    assert.deepEqual(
      decoded.exchanges.map((exchange) => [exchange.method, exchange.path, exchange.status, exchange.requestBytes, exchange.responseBytes]),
      [
        ['GET', '/a/1', 404, `GET /a/1?q=x HTTP/1.1\r\nHost: ${'h'.repeat(100)}\r\nX-Long: ${'y'.repeat(100)}\r\n\r\n`.length, RESPONSE.length],
        ['PUT', '/b', 200, 'PUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'.length, chunked.length + 100],
        ['GET', '/users/42', 404, REQUEST.length, RESPONSE.length],
      ],
    );
    assert.deepEqual(inPlace.exchanges, decoded.exchanges);
    assert.deepEqual(inPlace.capture.takeDrops(), decoded.capture.takeDrops());
  });

  it('server side: a request read (its return time) and a response written (its entry time) make one exchange', () => {
    const { capture: c, exchanges } = capture();
    c.add(chunk(5n, 'received', REQUEST, 100n, 150n), ends);
    c.add(chunk(5n, 'sent', RESPONSE, 400n, 900n), ends);
    assert.deepEqual(exchanges, [
      {
        connId: 5n,
        cgroupId: 3n,
        observer: 'server',
        method: 'GET',
        methodOriginal: null,
        path: '/users/42',
        route: '/users/{id}',
        version: '1.1',
        status: 404,
        requestBytes: REQUEST.length,
        responseBytes: RESPONSE.length,
        requestBodyBytes: 0,
        responseBodyBytes: 5,
        seq: 0,
        requestFirstNs: 150n,
        requestLastNs: 150n,
        responseFirstNs: 400n,
        responseLastNs: 400n,
        latencyNs: 250n,
        pid: 77,
        ends: ENDS,
      },
    ]);
  });

  it('client side, a body cut by the copy still counts at the call length', () => {
    const { capture: c, exchanges } = capture();
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n';
    c.add(chunk(6n, 'sent', REQUEST, 10n, 20n), ends);
    c.add(chunk(6n, 'received', head + 'x'.repeat(10), 30n, 40n, head.length + 1000), ends);
    assert.deepEqual(
      exchanges.map(({ observer, status, responseBytes, latencyNs }) => ({ observer, status, responseBytes, latencyNs })),
      [{ observer: 'client', status: 200, responseBytes: head.length + 1000, latencyNs: 30n }],
    );
  });

  it('a closed connection ends at the second tick: chunks read after its final record still count', () => {
    const { capture: c, exchanges } = capture();
    c.add(chunk(7n, 'received', REQUEST, 1n, 2n), ends);
    c.connectionClosed(7n);
    c.tick(3n);
    assert.equal(c.hasConnection(7n), true);
    c.add(chunk(7n, 'sent', RESPONSE, 4n, 5n), ends); // read from the chunk ring after the final
    c.tick(6n);
    assert.equal(c.hasConnection(7n), false);
    assert.deepEqual({ exchanges: exchanges.length, stats: c.stats }, { exchanges: 1, stats: { connections: 1, closed: 1, idleEvicted: 0 } });
  });

  it('a close noted before any chunk of the connection was read ends it all the same', () => {
    const { capture: c, exchanges } = capture();
    c.connectionClosed(9n); // the flows ring was read first
    c.add(chunk(9n, 'received', REQUEST, 1n, 2n), ends);
    c.add(chunk(9n, 'sent', 'HTTP/1.0 200 OK\r\n\r\nuntil close', 3n, 4n), ends);
    c.tick(5n);
    assert.deepEqual(exchanges, []); // the body ends at close, which has not come yet
    c.tick(6n);
    assert.deepEqual(exchanges.map(({ status, responseBytes }) => ({ status, responseBytes })), [{ status: 200, responseBytes: 30 }]);
    assert.equal(c.hasConnection(9n), false);
  });

  it('an idle connection is ended, and what it left in flight is counted and reported unanswered', () => {
    const { capture: c, exchanges } = capture({ idleNs: 1000n });
    c.add(chunk(8n, 'received', REQUEST, 1n, 2n), ends);
    c.tick(1001n); // a sweep: 999 ns idle
    assert.equal(c.hasConnection(8n), true);
    c.tick(1050n); // idle long enough, but sweeps are a tenth of the idle time apart
    assert.equal(c.hasConnection(8n), true);
    c.tick(1101n);
    assert.equal(c.hasConnection(8n), false);
    assert.deepEqual(c.stats, { connections: 1, closed: 0, idleEvicted: 1 });
    assert.deepEqual(c.takeDrops(), [['unanswered_request', 1]]);
    assert.deepEqual(c.takeDrops(), []);
    assert.deepEqual(
      exchanges.map(({ connId, seq, path, status, requestBytes, responseBytes, requestLastNs, responseFirstNs, latencyNs }) => ({ connId, seq, path, status, requestBytes, responseBytes, requestLastNs, responseFirstNs, latencyNs })),
      [{ connId: 8n, seq: 0, path: '/users/42', status: null, requestBytes: REQUEST.length, responseBytes: null, requestLastNs: 2n, responseFirstNs: null, latencyNs: null }],
    );
  });

  it('numbers the exchanges of each connection, and caps the routes per server end: past the cap {other}, counted', () => {
    const exchanges: CapturedExchange[] = [];
    const c = new HttpCapture({ maxConnections: 10, idleNs: 1000n, maxPathBytes: 2048, routeRules: [], maxRoutesPerService: 2, maxRouteServices: 10, firstConnId: 0n }, (exchange) =>
      exchanges.push(exchange),
    );
    const other = () => ({ ...ENDS, serverPort: 81 });
    const ok = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
    for (const [connId, path, of] of [[1n, '/a', ends], [1n, '/b/7', ends], [1n, '/c', ends], [1n, '/a', ends], [2n, '/c', other]] as const) {
      c.add(chunk(connId, 'received', `GET ${path} HTTP/1.1\r\n\r\n`, 1n, 2n), of);
      c.add(chunk(connId, 'sent', ok, 3n, 4n), of);
    }
    assert.deepEqual(
      exchanges.map(({ connId, seq, route }) => [connId, seq, route]),
      [[1n, 0, '/a'], [1n, 1, '/b/{id}'], [1n, 2, '{other}'], [1n, 3, '/a'], [2n, 0, '/c']],
    );
    assert.deepEqual(c.takeDrops(), [['route_cap', 1]]);
  });

  it('joins midway a connection older than the capture (its conn id) or adopted by the kernel (its flag), no other', () => {
    const { capture: c, exchanges } = capture({ firstConnId: 10n });
    const BODY_TAIL = 'of a body in flight\r\n';
    const adopted = (record: HttpChunkRecord) => ({ ...record, flags: HttpChunkFlag.adopted });
    // Conn 9 began before the capture, conn 12 after but adopted: each skips the tail and pairs the next exchange.
    for (const [connId, mark] of [[9n, (record: HttpChunkRecord) => record], [12n, adopted]] as const) {
      c.add(mark(chunk(connId, 'received', BODY_TAIL, 1n, 2n)), ends);
      c.add(mark(chunk(connId, 'received', REQUEST, 100n, 150n)), ends);
      c.add(mark(chunk(connId, 'sent', RESPONSE, 400n, 900n)), ends);
    }
    // Conn 10 began with the capture: its first bytes are a message's start, so a tail there is not HTTP.
    c.add(chunk(10n, 'received', BODY_TAIL, 1n, 2n), ends);
    c.add(chunk(10n, 'received', REQUEST, 100n, 150n), ends);
    assert.deepEqual(exchanges.map(({ connId, observer, status }) => [connId, observer, status]), [[9n, 'server', 404], [12n, 'server', 404]]);
    assert.deepEqual(Object.fromEntries(c.takeDrops()), { joined_mid_message: 2, not_http: 1 });
  });

  it('connections past the bound and records of an unknown direction are counted, not kept', () => {
    const { capture: c } = capture({ maxConnections: 1 });
    c.add(chunk(1n, 'received', REQUEST, 1n, 2n), ends);
    c.add(chunk(2n, 'received', REQUEST, 1n, 2n), ends);
    c.add({ ...chunk(1n, 'sent', RESPONSE, 3n, 4n), direction: 9 }, ends);
    assert.deepEqual([c.hasConnection(1n), c.hasConnection(2n)], [true, false]);
    assert.deepEqual(Object.fromEntries(c.takeDrops()), { connection_table_full: 1, bad_direction: 1 });
  });
});
