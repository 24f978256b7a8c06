/**
 * The HTTP/1.x parser and pairer (src/collector/http/parser.ts) on exact byte streams: framing of every kind, both
 * observer roles, pairing with pipelining and interim responses, every split of a message, cut copies, garbage
 * counted by kind, and a seeded fuzz run that must neither throw nor grow the heap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MIDWAY_CALLS } from '../../src/collector/http/message-stream.js';
import {
  HttpConnectionParser,
  MAX_HEADER_BYTES,
  createHttpParseCounters,
  type HttpExchange,
  type HttpParseCounters,
  type HttpRequestSeen,
} from '../../src/collector/http/parser.js';

type Side = 'sent' | 'received';
/** One kernel call: its direction, the bytes copied, its time, and the call's full length when the copy was cut. */
type Call = readonly [side: Side, bytes: string | Buffer, timeNs: bigint, callLength?: number];

interface Outcome {
  exchanges: HttpExchange[];
  /** Only the counters that moved. */
  rejections: Partial<HttpParseCounters>;
}

function moved(counters: HttpParseCounters): Partial<HttpParseCounters> {
  return Object.fromEntries(Object.entries(counters).filter(([, n]) => n !== 0));
}

/** `joinedMidway`: capture began on an open connection (HttpConnectionParser's fourth argument). */
function parse(calls: readonly Call[], close = false, joinedMidway = false): Outcome {
  const counters = createHttpParseCounters();
  const exchanges: HttpExchange[] = [];
  const parser = new HttpConnectionParser((exchange) => exchanges.push(exchange), counters, undefined, joinedMidway);
  for (const [side, bytes, timeNs, callLength] of calls) {
    const buffer = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    parser[side](buffer, timeNs, callLength ?? buffer.length);
  }
  if (close) parser.end();
  return { exchanges, rejections: moved(counters) };
}

const GET = 'GET /users/42?token=s3cret HTTP/1.1\r\nHost: api\r\nAccept: */*\r\n\r\n'; // 63 bytes
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n\r\nhello'; // 55 header bytes + 5

function exchange(fields: Partial<HttpExchange>): HttpExchange {
  return {
    observer: 'client',
    method: 'GET',
    methodOriginal: null,
    target: '/users/42?token=s3cret',
    version: '1.1',
    status: 200,
    requestHeaderBytes: 63,
    requestBodyBytes: 0,
    responseHeaderBytes: 55,
    responseBodyBytes: 5,
    requestFirstNs: 100n,
    requestLastNs: 100n,
    responseFirstNs: 250n,
    responseLastNs: 250n,
    latencyNs: 150n,
    ...fields,
  };
}

describe('http parser: framing and pairing', () => {
  it('pairs a request with its Content-Length response, with exact sizes and times', () => {
    assert.equal(Buffer.byteLength(GET), 63);
    assert.equal(Buffer.byteLength(OK), 60);
    assert.deepEqual(parse([['sent', GET, 100n], ['received', OK, 250n]]), { exchanges: [exchange({})], rejections: {} });
  });

  it('reports the server role when requests are read and responses written', () => {
    assert.deepEqual(parse([['received', GET, 100n], ['sent', OK, 250n]]), {
      exchanges: [exchange({ observer: 'server' })],
      rejections: {},
    });
  });

  it('keeps a known method as is, and reports any other as _OTHER with the original', () => {
    const calls = (method: string): Call[] => [
      ['sent', `${method} /dav HTTP/1.0\r\n\r\n`, 1n],
      ['received', 'HTTP/1.0 207 Multi\r\nContent-Length: 0\r\n\r\n', 3n],
    ];
    const common = { target: '/dav', version: '1.0', status: 207, responseHeaderBytes: 41, responseBodyBytes: 0 } as const;
    const times = { requestFirstNs: 1n, requestLastNs: 1n, responseFirstNs: 3n, responseLastNs: 3n, latencyNs: 2n };
    assert.deepEqual(parse(calls('PROPFIND')).exchanges, [
      exchange({ ...common, ...times, method: '_OTHER', methodOriginal: 'PROPFIND', requestHeaderBytes: 26 }),
    ]);
    assert.deepEqual(parse(calls('DELETE')).exchanges, [exchange({ ...common, ...times, method: 'DELETE', requestHeaderBytes: 24 })]);
  });

  it('pairs pipelined requests with their responses in order, over keep-alive', () => {
    const requests = ['/a', '/b', '/c'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const responses = [200, 404, 503].map((status) => `HTTP/1.1 ${status} X\r\nContent-Length: 2\r\n\r\nok`).join('');
    const { exchanges, rejections } = parse([['sent', requests, 10n], ['received', responses, 40n]]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(
      exchanges.map((e) => [e.target, e.status, e.requestHeaderBytes, e.responseHeaderBytes, e.responseBodyBytes, e.latencyNs]),
      [
        ['/a', 200, 28, 37, 2, 30n],
        ['/b', 404, 28, 37, 2, 30n],
        ['/c', 503, 28, 37, 2, 30n],
      ],
    );
  });

  it('reads no body after HEAD, 204 or 304 even with a Content-Length, and frames the next response', () => {
    const { exchanges, rejections } = parse([
      ['sent', 'HEAD /h HTTP/1.1\r\n\r\nDELETE /d HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n', 1n],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n', 2n],
      ['received', 'HTTP/1.1 204 No Content\r\n\r\n', 3n],
      ['received', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n', 4n],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend', 5n],
    ]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(
      exchanges.map((e) => [e.method, e.target, e.status, e.responseBodyBytes, e.responseLastNs]),
      [
        ['HEAD', '/h', 200, 0, 2n],
        ['DELETE', '/d', 204, 0, 3n],
        ['GET', '/n', 304, 0, 4n],
        ['GET', '/last', 200, 3, 5n],
      ],
    );
  });

  it('takes 100 Continue as interim: latency runs from the body to the final response', () => {
    const head = 'PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n';
    const { exchanges, rejections } = parse([
      ['sent', head, 10n],
      ['received', 'HTTP/1.1 100 Continue\r\n\r\n', 20n],
      ['sent', 'data', 30n],
      ['received', 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', 45n],
    ]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(exchanges, [
      exchange({
        method: 'PUT',
        target: '/up',
        status: 201,
        requestHeaderBytes: head.length,
        requestBodyBytes: 4,
        responseHeaderBytes: 43,
        responseBodyBytes: 0,
        requestFirstNs: 10n,
        requestLastNs: 30n,
        responseFirstNs: 45n,
        responseLastNs: 45n,
        latencyNs: 15n,
      }),
    ]);
  });

  it('frames chunked bodies with extensions and trailers, counting their wire bytes', () => {
    const request = 'POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;name=value;q="x y"\r\nwiki\r\n0\r\n\r\n';
    const response =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA ; ext\r\n0123456789\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n';
    const { exchanges, rejections } = parse([['sent', request, 1n], ['received', response, 9n]]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(
      exchanges.map((e) => [e.requestHeaderBytes, e.requestBodyBytes, e.responseHeaderBytes, e.responseBodyBytes]),
      [[54, 33, 47, 62]],
    );
  });

  it('ends a body without length when the connection closes, at the time of its last bytes', () => {
    const calls: Call[] = [
      ['sent', 'GET /stream HTTP/1.0\r\n\r\n', 1n],
      ['received', 'HTTP/1.0 200 OK\r\nServer: x\r\n\r\nfirst', 5n],
      ['received', 'second', 7n],
    ];
    assert.deepEqual(parse(calls).exchanges, [], 'no end yet: the body may go on');
    const { exchanges, rejections } = parse(calls, true);
    assert.deepEqual(rejections, {});
    assert.deepEqual(
      exchanges.map((e) => [e.status, e.responseHeaderBytes, e.responseBodyBytes, e.responseFirstNs, e.responseLastNs]),
      [[200, 30, 11, 5n, 7n]],
    );
  });

  it('stops at an accepted Upgrade or CONNECT (counted once) and ignores the tunnel after it', () => {
    const websocket = parse([
      ['sent', 'GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n', 1n],
      ['received', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello', 2n],
      ['sent', '\x81\x85garbage that is not http', 3n],
      ['received', 'HTTP/1.1 200 OK\r\n\r\n', 4n],
    ], true);
    assert.deepEqual(websocket.exchanges.map((e) => [e.target, e.status]), [['/ws', 101]]);
    assert.deepEqual(websocket.rejections, { upgrade: 1 });
    const tunnel = parse([
      ['sent', 'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x16\x03\x01', 1n],
      ['received', 'HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03', 2n],
    ], true);
    assert.deepEqual(tunnel.exchanges.map((e) => [e.method, e.target, e.status, e.responseBodyBytes]), [['CONNECT', 'db:5432', 200, 0]]);
    assert.deepEqual(tunnel.rejections, { upgrade: 1 });
  });

  it('goes on as HTTP when the server declines an upgrade', () => {
    const { exchanges, rejections } = parse([
      ['sent', 'GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n', 1n],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 2n],
      ['sent', 'GET /b HTTP/1.1\r\n\r\n', 3n],
      ['received', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 4n],
    ]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(exchanges.map((e) => [e.target, e.status]), [['/a', 200], ['/b', 404]]);
  });
});

/** Conversations whose every message is split at every boundary in the next test. */
const CONVERSATIONS: ReadonlyArray<{ requests: string; responses: string }> = [
  { requests: GET, responses: OK },
  {
    requests: 'POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n0\r\nT: 1\r\n\r\nHEAD / HTTP/1.1\r\n\r\n',
    responses: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n',
  },
  { requests: 'GET / HTTP/1.0\n\n', responses: 'HTTP/1.0 500 Oops\nX: y\n\nno length, ends at close' },
];

describe('http parser: split messages', () => {
  for (const [index, { requests, responses }] of CONVERSATIONS.entries()) {
    it(`gives the same exchanges for conversation ${index} however its bytes are split`, () => {
      const whole = parse([['sent', requests, 5n], ['received', responses, 5n]], true);
      assert.ok(whole.exchanges.length > 0);
      for (const [side, text] of [['sent', requests], ['received', responses]] as const) {
        const other: Call = side === 'sent' ? ['received', responses, 5n] : ['sent', requests, 5n];
        for (let cut = 1; cut < text.length; cut++) {
          const halves: Call[] = [[side, text.slice(0, cut), 5n], [side, text.slice(cut), 5n]];
          const calls = side === 'sent' ? [...halves, other] : [other, ...halves];
          assert.deepEqual(parse(calls, true), whole, `${side} split at byte ${cut}`);
        }
        const bytes: Call[] = [...text].map((char) => [side, char, 5n]);
        assert.deepEqual(parse(side === 'sent' ? [...bytes, other] : [other, ...bytes], true), whole, `${side} in 1-byte calls`);
      }
    });
  }
});

describe('http parser: cut copies, garbage and loose ends', () => {
  it('skips the bytes a cut copy missed inside a counted body', () => {
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n';
    const { exchanges, rejections } = parse([
      ['sent', GET, 1n],
      ['received', `${head}${'x'.repeat(100)}`, 2n, head.length + 4_000_000],
      ['received', 'y'.repeat(64), 3n, 1_000_000],
    ]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(exchanges.map((e) => [e.responseHeaderBytes, e.responseBodyBytes, e.responseLastNs]), [[head.length, 5_000_000, 3n]]);
  });

  it('gives up a message whose headers were cut, counted, and resumes at the next call', () => {
    const { exchanges, rejections } = parse([
      ['sent', 'GET /cut HTTP/1.1\r\nHost: a', 1n, 5000],
      ['sent', 'GET /next HTTP/1.1\r\n\r\n', 2n],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 3n],
    ]);
    assert.deepEqual(rejections, { truncated_headers: 1 });
    assert.deepEqual(exchanges.map((e) => [e.target, e.status]), [['/next', 200]]);
  });

  describe('after a message whose head the copy cut (counted once), skips the rest of it up to the next start line', () => {
    // nginx's head for a 5 MiB file is 260 bytes: more than a 256-byte copy, so its end and the framing are missed.
    const head = `HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5242880\r\n${'X-Pad: y\r\n'.repeat(30)}\r\n`;
    const next = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnot';

    it('as the server that wrote it: body calls without bytes (sendfile) are not counted again', () => {
      const { exchanges, rejections } = parse([
        ['received', GET, 1n],
        ['sent', head.slice(0, 256), 2n, head.length],
        ...[3n, 4n, 5n].map((t): Call => ['sent', '', t, 65536]),
        ['received', 'GET /b HTTP/1.1\r\n\r\n', 6n],
        ['sent', next, 7n],
      ]);
      assert.deepEqual(rejections, { truncated_headers: 1 });
      assert.deepEqual(exchanges.map((e) => [e.observer, e.target, e.status, e.responseBodyBytes]), [['server', '/b', 404, 3]]);
    });

    it('as the client that read it: body calls, even ones that begin like a start line, are not parsed as one', () => {
      const { exchanges, rejections } = parse([
        ['sent', GET, 1n],
        ['received', `${head}ABCDEFGHIJKLMNOPQRSTUVWXYZ`.slice(0, 256), 2n, 8192],
        ['received', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(10), 3n, 8192],
        ['received', 'HELLO world\r\n', 4n, 8192],
        ['received', 'GET /in/the/body HTTP/1.1\r\n', 5n, 8192],
        ['received', 'HTTP/1.1 maybe\r\n', 6n],
        ['sent', 'GET /b HTTP/1.1\r\n\r\n', 7n],
        ['received', next, 8n],
        ['sent', 'GET /c HTTP/1.1\r\n\r\n', 9n],
        ['received', next, 10n],
      ]);
      assert.deepEqual(rejections, { truncated_headers: 1 });
      assert.deepEqual(exchanges.map((e) => [e.observer, e.target, e.status, e.requestLastNs, e.responseFirstNs]), [
        ['client', '/b', 404, 7n, 8n],
        ['client', '/c', 404, 9n, 10n],
      ]);
    });
  });

  it('completes a message whose cut copy ran past its body, and drops the next one, which began in the missed bytes, counted', () => {
    const { exchanges, rejections } = parse([
      ['sent', `${GET}`, 1n],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345', 2n, 60],
      ['sent', 'GET /after HTTP/1.1\r\n\r\n', 3n],
      ['received', 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n', 4n],
    ]);
    assert.deepEqual(rejections, { truncated_body: 1 });
    assert.deepEqual(exchanges.map((e) => [e.target, e.status, e.responseBodyBytes]), [
      ['/users/42?token=s3cret', 200, 10],
      ['/after', 202, 0],
    ]);
  });

  it('pipelined, a response lost in the bytes a copy missed takes its request with it: later ones pair as they should', () => {
    const { exchanges, rejections } = parse([
      ['sent', 'GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n', 1n],
      // /a's 10-byte body, then /b's response (a 5,000-byte body), read in one call of which 45 bytes were copied.
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234567', 2n, 38 + 10 + 5043],
      ['received', 'x'.repeat(64), 3n, 1000],
      ['sent', 'GET /c HTTP/1.1\r\n\r\n', 4n],
      ['received', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 5n],
    ]);
    assert.deepEqual(rejections, { truncated_body: 1 });
    assert.deepEqual(exchanges.map((e) => [e.target, e.status]), [
      ['/a', 200],
      ['/c', 404],
    ]);
  });

  it('after a loss, a body call that only begins like a start line is not joined to the next call', () => {
    const head = `HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n${'X-Pad: y\r\n'.repeat(30)}\r\n`;
    const { exchanges, rejections } = parse([
      ['sent', GET, 1n],
      ['received', head.slice(0, 256), 2n, 8192],
      ['received', 'ABC DEF', 3n], // the body's last bytes, whole, with no line end
      ['sent', 'GET /b HTTP/1.1\r\n\r\n', 4n],
      ['received', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 5n],
    ]);
    assert.deepEqual(rejections, { truncated_headers: 1 });
    assert.deepEqual(exchanges.map((e) => [e.target, e.status]), [['/b', 404]]);
  });

  describe('a chunked body whose copy was cut past its current chunk (one write of the whole body, as nginx and Node send one)', () => {
    const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'; // 47 bytes
    const body = `${(600).toString(16)}\r\n${'x'.repeat(600)}\r\n0\r\n\r\n`; // 612 bytes
    /** The response in one call, copied up to 256 bytes (the default http.captureBytes). */
    const cutResponse: Call = ['received', `${head}${body}`.slice(0, 256), 2n, head.length + body.length];
    const next = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnot'; // 45 header bytes

    it('ended in the missed bytes when the next call starts a response: complete at the cut call, all its bytes counted', () => {
      assert.deepEqual(parse([['sent', GET, 1n], cutResponse, ['sent', 'GET /b HTTP/1.1\r\n\r\n', 3n], ['received', next, 4n]]), {
        exchanges: [
          exchange({ requestLastNs: 1n, requestFirstNs: 1n, responseHeaderBytes: 47, responseBodyBytes: 612, responseFirstNs: 2n, responseLastNs: 2n, latencyNs: 1n }),
          exchange({ target: '/b', requestHeaderBytes: 19, requestFirstNs: 3n, requestLastNs: 3n, status: 404, responseHeaderBytes: 45, responseBodyBytes: 3, responseFirstNs: 4n, responseLastNs: 4n, latencyNs: 1n }),
        ],
        rejections: {},
      });
    });

    it('ended in them when the connection closes next', () => {
      assert.deepEqual(parse([['sent', GET, 1n], cutResponse], true).exchanges.map((e) => [e.status, e.responseBodyBytes, e.responseLastNs]), [[200, 612, 2n]]);
    });

    it('goes on when the next call starts with a chunk-size line', () => {
      const more = `${head}258\r\n`; // a first chunk of 600 bytes: its data and CRLF (602 bytes) cut
      const { exchanges, rejections } = parse([
        ['sent', GET, 1n],
        ['received', more, 2n, more.length + 602],
        ['received', '3\r\nabc\r\n0\r\n\r\n', 3n],
      ]);
      assert.deepEqual(rejections, {});
      assert.deepEqual(exchanges.map((e) => [e.responseBodyBytes, e.responseLastNs]), [[5 + 602 + 13, 3n]]);
    });

    it('goes on unframed when the next call neither starts a message nor a chunk: every byte up to the next start line is body', () => {
      const { exchanges, rejections } = parse([
        ['sent', GET, 1n],
        cutResponse,
        ['received', 'x'.repeat(40), 3n],
        ['received', '5\r\nhello\r\n', 4n], // not read as framing once it was lost
        ['sent', 'GET /b HTTP/1.1\r\n\r\n', 5n],
        ['received', next, 6n],
      ]);
      assert.deepEqual(rejections, {});
      assert.deepEqual(exchanges.map((e) => [e.target, e.status, e.responseBodyBytes, e.responseLastNs]), [
        ['/users/42?token=s3cret', 200, 612 + 40 + 10, 4n],
        ['/b', 404, 3, 6n],
      ]);
    });
    it('goes on unframed when the next call begins with a "0" line of body text, not the blank line that would end the body', () => {
      const text = '0\r\nmore text\r\n';
      const { exchanges, rejections } = parse([['sent', GET, 1n], cutResponse, ['received', text, 3n], ['sent', 'GET /b HTTP/1.1\r\n\r\n', 5n], ['received', next, 6n]]);
      assert.deepEqual(rejections, {});
      assert.deepEqual(exchanges.map((e) => [e.target, e.status, e.responseBodyBytes, e.responseLastNs]), [
        ['/users/42?token=s3cret', 200, 612 + text.length, 3n],
        ['/b', 404, 3, 6n],
      ]);
    });

    it('goes on unframed when the next call begins with body bytes that read as a chunk size, but whose chunk the call cannot hold', () => {
      // Go's net/http writes a chunked body through a 4 KiB buffer, so its calls end wherever the buffer does: here
      // a call begins with the last 12 bytes of a chunk's data ("cccccccccccc", twelve hex digits) and its CRLF.
      const chunks = [2048, 964, 904].map((size) => `${size.toString(16)}\r\n${'c'.repeat(size)}\r\n`).join('');
      const body = `${chunks}0\r\n\r\n`;
      const firstCall = `${head}${body.slice(0, 5 + 2048 + 2 + 5 + 952)}`;
      const secondCall = body.slice(firstCall.length - head.length, body.length - 5); // 925 bytes, as Go's
      const { exchanges, rejections } = parse([
        ['sent', GET, 1n],
        ['received', firstCall.slice(0, 256), 2n, firstCall.length],
        ['received', secondCall.slice(0, 256), 3n, secondCall.length],
        ['received', '0\r\n\r\n', 4n],
        ['sent', 'GET /b HTTP/1.1\r\n\r\n', 5n],
        ['received', next, 6n],
      ]);
      assert.equal(secondCall.slice(0, 14), 'cccccccccccc\r\n');
      assert.deepEqual(rejections, {});
      assert.deepEqual(exchanges.map((e) => [e.target, e.status, e.responseBodyBytes, e.responseLastNs]), [
        ['/users/42?token=s3cret', 200, body.length, 4n],
        ['/b', 404, 3, 6n],
      ]);
    });
  });

  it("frames a chunked request body a server reads in fixed-size calls, cut by the copy, up to the next request (nginx's 8 KiB reads)", () => {
    const head = 'PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n';
    // Chunks of 65,524 bytes, as curl sends a file: the size lines fall inside the reads, past their 256-byte copies.
    const chunk = `fff4\r\n${'z'.repeat(0xfff4)}\r\n`;
    const body = `${chunk}${chunk}0\r\n\r\n`;
    const reads: Call[] = [['received', head, 1n]];
    for (let at = 0, t = 2n; at < body.length; at += 8192, t++) reads.push(['received', body.slice(at, at + 256), t, Math.min(8192, body.length - at)]);
    const last = reads[reads.length - 1]![2];
    const { exchanges, rejections } = parse([
      ...reads,
      ['sent', 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', last + 1n],
      ['received', 'GET /next HTTP/1.1\r\n\r\n', last + 2n],
      ['sent', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', last + 3n],
    ]);
    assert.deepEqual(rejections, {});
    assert.deepEqual(
      exchanges.map((e) => [e.observer, e.target, e.status, e.requestBodyBytes, e.requestLastNs, e.latencyNs]),
      [
        ['server', '/upload', 201, body.length, last, 1n],
        ['server', '/next', 200, 0, last + 2n, 1n],
      ],
    );
  });

  it('bounds requests waiting for responses, counting each one dropped', () => {
    const requests = Array.from({ length: 66 }, (_, i) => `GET /${i} HTTP/1.1\r\n\r\n`).join('');
    const { exchanges, rejections } = parse([['sent', requests, 1n], ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 2n]]);
    assert.deepEqual(rejections, { pipeline_overflow: 2 });
    assert.deepEqual(exchanges.map((e) => e.target), ['/2']);
  });

  it('recognises a stream that is not HTTP from its first byte and ignores the rest', () => {
    const tls = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]);
    const { exchanges, rejections } = parse([
      ['sent', tls.subarray(0, 1), 1n],
      ['sent', Buffer.alloc(1 << 20, 0x41), 2n],
      ['received', GET, 3n],
    ], true);
    assert.deepEqual(exchanges, []);
    assert.deepEqual(rejections, { not_http: 1 });
    for (const other of ['SSH-2.0-OpenSSH_9.6\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'PING\r\n', '*1\r\n$4\r\nPING\r\n']) {
      assert.deepEqual(parse([['sent', other, 1n]], true), { exchanges: [], rejections: { not_http: 1 } }, other);
    }
  });

  it('joined midway, skips calls in the middle of a message and starts at the first start line, counted once per direction', () => {
    const bodyTail = Buffer.concat([Buffer.from('tail of a body\r\nUPPER CASE LINE\r\n', 'latin1'), Buffer.from([0, 1, 0x0a, 0xff])]);
    const midway = parse([
      ['sent', bodyTail, 50n],
      ['sent', 'more body without a line end', 60n, 5000],
      ['received', 'HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n', 70n], // the answer to the request in flight
      ['received', 'x'.repeat(9000), 80n],
      ['sent', GET, 100n],
      ['received', OK, 250n],
    ], true, true);
    assert.deepEqual(midway.exchanges, [exchange({})]);
    assert.deepEqual(midway.rejections, { joined_mid_message: 1, unpaired_response: 1 });
    // The same calls seen from the connection's start are not HTTP.
    assert.deepEqual(parse([['sent', bodyTail, 50n], ['sent', GET, 100n]], true).rejections, { not_http: 1 });
  });

  it('joined midway, claims the observer role only from a start line that parses', () => {
    // A received body line that starts like a request line and is not one says nothing: the role comes from the
    // status line that follows, so the observer is the client.
    const { exchanges, rejections } = parse([
      ['received', 'POST is how forms travel\r\n', 10n],
      ['received', 'HTTP/1.1 204 No Content\r\n\r\n', 20n],
      ['sent', GET, 100n],
      ['received', OK, 250n],
    ], true, true);
    assert.deepEqual(exchanges.map((e) => [e.observer, e.status]), [['client', 200]]);
    assert.deepEqual(rejections, { joined_mid_message: 1, unpaired_response: 1 });
  });

  it(`joined midway, gives a stream without a start line ${MIDWAY_CALLS} calls, then counts it not HTTP and ignores the rest`, () => {
    const tls = Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, 0x41, 0x0a]);
    const calls: Call[] = Array.from({ length: MIDWAY_CALLS }, (_, i) => ['sent', tls, BigInt(i)] as const);
    assert.deepEqual(parse(calls, true, true), { exchanges: [], rejections: {} });
    assert.deepEqual(parse([...calls, ['sent', tls, 9_999n], ['sent', GET, 10_000n], ['received', OK, 10_001n]], true, true), {
      exchanges: [],
      rejections: { not_http: 1 },
    });
  });

  it('joined midway, a long line without a start is skipped with its call, not counted as a header too large', () => {
    const line = Buffer.alloc(MAX_HEADER_BYTES + 10, 0x41); // 'AAAA...': a plausible method token, never a space
    const { exchanges, rejections } = parse([['sent', line, 1n], ['sent', GET, 100n], ['received', OK, 250n]], true, true);
    assert.deepEqual(exchanges, [exchange({})]);
    assert.deepEqual(rejections, { joined_mid_message: 1 });
  });

  it('counts malformed start lines, headers and chunks by kind', () => {
    // Each case: the calls, what they must count, and how many valid exchanges precede the bad message.
    const cases: ReadonlyArray<readonly [Call[], Partial<HttpParseCounters>, number]> = [
      [[['sent', `${GET}GET / HTTP/2.0\r\n\r\n`, 1n]], { bad_request_line: 1 }, 0],
      [[['sent', `${GET}GET /a b HTTP/1.1\r\n\r\n`, 1n]], { bad_request_line: 1 }, 0],
      [[['sent', `${GET}${GET}`, 1n], ['received', `${OK}HTTP/1.1 2OO OK\r\n\r\n`, 2n]], { bad_status_line: 1 }, 1],
      [[['sent', 'GET / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n', 1n]], { bad_header: 1 }, 0],
      [[['sent', 'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 1n]], { bad_header: 1 }, 0],
      [[['sent', 'GET / HTTP/1.1\r\nBad Name: x\r\n\r\n', 1n]], { bad_header: 1 }, 0],
      [[['sent', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', 1n]], { bad_header: 1 }, 0],
      [[['sent', `GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_HEADER_BYTES)}\r\n\r\n`, 1n]], { header_too_large: 1 }, 0],
      [[['sent', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 1n]], { bad_chunk: 1 }, 0],
      [[['sent', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', 1n]], { bad_chunk: 1 }, 0],
      [[['sent', `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: ${'t'.repeat(MAX_HEADER_BYTES)}\r\n`, 1n]], { bad_chunk: 1 }, 0],
      [[['received', OK, 1n]], { unpaired_response: 1 }, 0],
    ];
    for (const [calls, rejections, valid] of cases) {
      const { exchanges, rejections: counted } = parse(calls, true);
      assert.deepEqual(counted, rejections, String(calls[calls.length - 1]![1]));
      assert.equal(exchanges.length, valid);
    }
  });

  it('counts requests left unanswered and messages left incomplete at close', () => {
    assert.deepEqual(parse([['sent', `${GET}${GET}`, 1n]], true).rejections, { unanswered_request: 2 });
    assert.deepEqual(parse([['sent', `${GET}GET /hal`, 1n]], true).rejections, { unanswered_request: 1, incomplete_at_close: 1 });
  });

  it('pairs a response whose body the close cut (its head had come) with the body bytes that came, counted', () => {
    const cut = (response: string) => parse([['sent', GET, 100n], ['received', response, 250n]], true);
    // Content-Length 5, 2 bytes came: the client read the head and closed (wget on an error) or abandoned the body.
    assert.deepEqual(cut('HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhe'), {
      exchanges: [exchange({ status: 404, responseHeaderBytes: 45, responseBodyBytes: 2 })],
      rejections: { incomplete_at_close: 1 },
    });
    // Chunked, cut inside a chunk's data, and after the last chunk before the trailers' end.
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    assert.deepEqual(cut(`${chunked}5\r\nhel`), { exchanges: [exchange({ responseHeaderBytes: 47, responseBodyBytes: 6 })], rejections: { incomplete_at_close: 1 } });
    assert.deepEqual(cut(`${chunked}0\r\nX: y\r\n`), { exchanges: [exchange({ responseHeaderBytes: 47, responseBodyBytes: 9 })], rejections: { incomplete_at_close: 1 } });
    // A response cut inside its head answered nothing the client could read: the request stays unanswered.
    assert.deepEqual(cut('HTTP/1.1 200 OK\r\nContent-Le'), { exchanges: [], rejections: { incomplete_at_close: 1, unanswered_request: 1 } });
  });

  it('hands each request left unanswered at close to `unanswered`, also one whose body the close cut', () => {
    const seen: HttpRequestSeen[] = [];
    const counters = createHttpParseCounters();
    const parser = new HttpConnectionParser(() => assert.fail('no exchange'), counters, (request) => seen.push(request));
    parser.received(Buffer.from('GET /a?q=1 HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1'), 10n);
    parser.received(Buffer.from('POST /b HTTP/1.0\r\nContent-Length: 10\r\n\r\n12345', 'latin1'), 20n);
    parser.received(Buffer.from('678', 'latin1'), 30n);
    parser.end();
    const request = { observer: 'server', methodOriginal: null } as const;
    assert.deepEqual(seen, [
      { ...request, method: 'GET', target: '/a?q=1', version: '1.1', requestHeaderBytes: 32, requestBodyBytes: 0, requestFirstNs: 10n, requestLastNs: 10n },
      { ...request, method: 'POST', target: '/b', version: '1.0', requestHeaderBytes: 40, requestBodyBytes: 0, requestFirstNs: 20n, requestLastNs: 20n },
    ]);
    assert.deepEqual(moved(counters), { unanswered_request: 2, incomplete_at_close: 1 });
  });
});

/** Mulberry32: a small seeded PRNG, so every fuzz run feeds the same bytes. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('http parser: fuzz', () => {
  it('turns 1,000,000 random and mutated messages (500,000 conversations, both sides) into exchanges or counted rejections, in flat memory', (t) => {
    const random = prng(0x5eed);
    const seeds = CONVERSATIONS.flatMap(({ requests, responses }) => [Buffer.from(requests), Buffer.from(responses)]);
    const interesting = Buffer.from('\r\n:; 0123456789abcdefHTTP/1.1 GET chunked Content-Length Transfer-Encoding');

    /** Line ends alone are no message (the parser skips them between messages): every input carries some other byte. */
    function someMessage(bytes: number[]): Buffer {
      if (!bytes.some((byte) => byte !== 0x0d && byte !== 0x0a)) bytes.push(0x58);
      return Buffer.from(bytes);
    }

    function mutate(source: Buffer): Buffer {
      if (random() < 0.1) return someMessage(Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
      const bytes = [...source];
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * (bytes.length + 1));
        const choice = random();
        if (choice < 0.3) bytes[at] = Math.floor(random() * 256);
        else if (choice < 0.55) bytes.splice(at, 0, interesting[Math.floor(random() * interesting.length)]!);
        else if (choice < 0.75) bytes.splice(at, 1 + Math.floor(random() * 8));
        else if (choice < 0.9) bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(random() * 40)));
        else bytes.length = Math.min(bytes.length, at);
      }
      return someMessage(bytes);
    }

    function feedInPieces(parser: HttpConnectionParser, side: Side, bytes: Buffer, timeNs: bigint): void {
      let at = 0;
      while (at < bytes.length) {
        const length = 1 + Math.floor(random() * (random() < 0.5 ? 8 : bytes.length));
        const piece = bytes.subarray(at, at + length);
        const cut = random() < 0.02 ? Math.floor(random() * 64) : 0;
        const copied = piece.subarray(0, Math.max(0, piece.length - cut));
        fed.push(`${side} ${JSON.stringify(copied.toString('latin1'))} of ${piece.length}`);
        parser[side](copied, timeNs, piece.length);
        at += length;
      }
    }

    /** Conversations; each feeds two messages (a request side and a response side): 1,000,000 messages, as issue 9 asks. */
    const CASES = 500_000;
    collectGarbage();
    const heapBefore = process.memoryUsage().heapUsed;
    let exchanges = 0;
    let rejections = 0;
    let outcomes = 0;
    let fed: string[] = [];
    let firstSilent: string[] | null = null;
    for (let i = 0; i < CASES; i++) {
      fed = [];
      const counters = createHttpParseCounters();
      let emitted = 0;
      const parser = new HttpConnectionParser(() => emitted++, counters);
      const pair = Math.floor(random() * CONVERSATIONS.length) * 2;
      const [requestSide, responseSide]: [Side, Side] = random() < 0.5 ? ['sent', 'received'] : ['received', 'sent'];
      // Half the conversations are mutated on each side; the rest stay valid, split and cut at random.
      feedInPieces(parser, requestSide, random() < 0.5 ? mutate(seeds[pair]!) : seeds[pair]!, BigInt(i));
      feedInPieces(parser, responseSide, random() < 0.5 ? mutate(seeds[pair + 1]!) : seeds[pair + 1]!, BigInt(i) + 1n);
      parser.end();
      const counted = Object.values(counters).reduce((sum, n) => sum + n, 0);
      exchanges += emitted;
      rejections += counted;
      if (emitted + counted > 0) outcomes++;
      else firstSilent ??= fed;
    }
    collectGarbage();
    const grownBytes = process.memoryUsage().heapUsed - heapBefore;
    t.diagnostic(`${exchanges} exchanges, ${rejections} rejections, heap grew ${grownBytes} bytes`);
    assert.equal(outcomes, CASES, `every conversation ends as an exchange or a counted rejection; first not: ${firstSilent?.join(' | ')}`);
    assert.ok(exchanges > 50_000 && rejections > 50_000, `both outcomes exercised: ${exchanges} exchanges, ${rejections} rejections`);
    assert.ok(grownBytes < 4 * 1024 * 1024, `heap grew ${grownBytes} bytes over ${CASES} conversations`);
  });
});
