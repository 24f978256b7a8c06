/**
 * bench/http-parse: HTTP/1.1 messages per CPU-second through the collector's parser (src/collector/http/parser.ts),
 * against Node's own llhttp-based parser fed the same bytes in the same run.
 *
 *   A typical keep-alive exchange: a GET with browser-like headers and a JSON response with Content-Length. Each
 *   iteration feeds the request to one side and the response to the other, as the kernel would show them, and
 *   pairs them: 2 messages. llhttp (Node's HTTPParser binding, a request parser and a response parser) parses the
 *   same two buffers; it also builds every header name and value as strings, as Node's server does, while ours
 *   decodes only the method, target and status. Prints one JSON line with the ratio.
 */
import { createRequire } from 'node:module';
import { HttpConnectionParser, createHttpParseCounters } from '../src/collector/http/parser.js';

const EXCHANGES = Number(process.env.BENCH_EXCHANGES ?? 1_000_000);
const FLOOR_MESSAGES_PER_CPU_S = 1_000_000;

const REQUEST = Buffer.from(
  'GET /api/v1/users/4711/orders?limit=20&page=3 HTTP/1.1\r\n' +
    'Host: orders.shop.svc.cluster.local:8080\r\n' +
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n' +
    'Accept: application/json, text/plain, */*\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Accept-Language: en-US,en;q=0.9\r\n' +
    'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0NzExIn0.c2lnbmF0dXJl\r\n' +
    'Connection: keep-alive\r\n' +
    'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n',
);
const BODY = JSON.stringify({ orders: Array.from({ length: 3 }, (_, i) => ({ id: 1000 + i, total: 19.99 * (i + 1) })) });
const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\n' +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(BODY)}\r\n` +
    'Date: Tue, 01 Dec 2026 18:00:00 GMT\r\n' +
    'Cache-Control: no-store\r\n' +
    'X-Request-Id: 7f3c2a1e-9b8d-4c6f-a2e1-0d9c8b7a6f5e\r\n' +
    `Connection: keep-alive\r\n\r\n${BODY}`,
);

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Runs `step` EXCHANGES times after a warm-up of the same length; returns messages (2 per step) per CPU-second. */
function messagesPerCpuSecond(step: (i: number) => void): number {
  for (let i = 0; i < EXCHANGES; i++) step(i);
  const start = cpuSeconds();
  for (let i = 0; i < EXCHANGES; i++) step(i);
  return Math.round((2 * EXCHANGES) / (cpuSeconds() - start));
}

interface LlhttpParser {
  initialize(type: number, resource: object): void;
  execute(data: Buffer): number | Error;
  [callback: number]: (...args: unknown[]) => unknown;
}
interface LlhttpModule {
  HTTPParser: {
    new (): LlhttpParser;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
  };
}

/** Node's llhttp binding, as its http module uses it (the public `_http_common` module, no spawning). */
function llhttpParser(type: 'REQUEST' | 'RESPONSE', onMessage: () => void): LlhttpParser {
  const { HTTPParser } = createRequire(import.meta.url)('_http_common') as LlhttpModule;
  const parser = new HTTPParser();
  parser.initialize(HTTPParser[type], {});
  const ignore = (): void => {};
  parser[HTTPParser.kOnHeaders] = ignore;
  parser[HTTPParser.kOnHeadersComplete] = ignore;
  parser[HTTPParser.kOnBody] = ignore;
  parser[HTTPParser.kOnExecute] = ignore;
  parser[HTTPParser.kOnMessageComplete] = onMessage;
  return parser;
}

export async function run(): Promise<Record<string, unknown>> {
  const counters = createHttpParseCounters();
  let exchanges = 0;
  const ours = new HttpConnectionParser(() => exchanges++, counters);
  const oursRate = messagesPerCpuSecond((i) => {
    const timeNs = BigInt(i);
    ours.sent(REQUEST, timeNs);
    ours.received(RESPONSE, timeNs);
  });
  const rejections = Object.values(counters).reduce((sum, n) => sum + n, 0);

  let llhttpMessages = 0;
  const count = (): void => {
    llhttpMessages++;
  };
  const requests = llhttpParser('REQUEST', count);
  const responses = llhttpParser('RESPONSE', count);
  const llhttpRate = messagesPerCpuSecond(() => {
    requests.execute(REQUEST);
    responses.execute(RESPONSE);
  });

  if (exchanges !== 2 * EXCHANGES || rejections !== 0 || llhttpMessages !== 4 * EXCHANGES) {
    throw new Error(`bench http-parse: parsers disagree: ${exchanges} exchanges, ${rejections} rejections, ${llhttpMessages} llhttp messages`);
  }
  return {
    bench: 'http-parse',
    exchanges: EXCHANGES,
    request_bytes: REQUEST.length,
    response_bytes: RESPONSE.length,
    messages_per_cpu_s: oursRate,
    llhttp_messages_per_cpu_s: llhttpRate,
    ratio_vs_llhttp: Math.round((oursRate / llhttpRate) * 100) / 100,
    floor: { messages_per_cpu_s: FLOOR_MESSAGES_PER_CPU_S },
    meets_floor: oursRate >= FLOOR_MESSAGES_PER_CPU_S,
  };
}
