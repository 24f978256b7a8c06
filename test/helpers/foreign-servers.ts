/**
 * HTTP servers the project did not write, run in a lab pod for the HTTP capture tests, each with its own account of
 * what it served: Debian's nginx (a generated configuration in a temp dir, its access log giving per request the
 * client port, the request's order on its connection, status, request length, bytes sent and body bytes sent) and
 * Python's `python3 -m http.server` (its log giving method, target and status). Both serve one document root:
 * a small file, a 5 MiB file, a directory that nginx lists with autoindex (a body of unknown length, so chunked),
 * and a directory nginx takes uploads into.
 *
 * nginx runs with `sendfile on`, as Debian configures it: a static file's body leaves by sendfile(2), whose records
 * carry its length and no bytes (bpf/http.bpf.c), while Python's server writes its files with write(2).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from '../../src/lab/pods.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { lineFrom, python } from './processes.js';

const NGINX = '/usr/sbin/nginx';
/** The files every server serves, by URL path. */
export const DOCUMENTS = { small: '/static/small.txt', big: '/static/big.bin', listing: '/listing/', upload: '/upload/' } as const;
const SMALL = 'a small static file\n';
const BIG_BYTES = 5 * 1024 * 1024;
const LISTED_FILES = 120;
/** Every document's mtime: a fixed second, so that If-Modified-Since and ETags are known in advance. */
const MTIME_S = 1_767_225_600; // 2026-01-01T00:00:00Z

/** A temp dir holding the document root; removed by remove(). */
export class DocumentRoot {
  readonly dir = mkdtempSync(join(tmpdir(), 'sidecarless-http-docs-'));

  constructor() {
    const big = Buffer.alloc(BIG_BYTES);
    for (let i = 0; i < BIG_BYTES; i++) big[i] = 0x41 + (i % 26);
    this.write(DOCUMENTS.small, SMALL);
    this.write(DOCUMENTS.big, big);
    // Enough names for a listing (one chunk) longer than a collector's copy by default (http.headBytes, 8192).
    for (let n = 0; n < LISTED_FILES; n++) this.write(`${DOCUMENTS.listing}file-${n}.txt`, `file ${n}\n`);
    mkdirSync(this.file(DOCUMENTS.upload));
  }

  /** The file served at `urlPath`. */
  file(urlPath: string): string {
    return join(this.dir, urlPath);
  }

  size(urlPath: string): number {
    return statSync(this.file(urlPath)).size;
  }

  /** The Last-Modified every document carries, as HTTP dates are written. */
  get lastModified(): string {
    return new Date(MTIME_S * 1000).toUTCString();
  }

  /** nginx's ETag of a static file: mtime and size in hex. */
  nginxEtag(urlPath: string): string {
    return `"${MTIME_S.toString(16)}-${this.size(urlPath).toString(16)}"`;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private write(urlPath: string, content: string | Buffer): void {
    const file = this.file(urlPath);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
    utimesSync(file, MTIME_S, MTIME_S);
  }
}

/** One line of nginx's access log. */
export interface NginxLogLine {
  clientPort: number;
  /** 1, 2, ...: the request's order on its connection. */
  connectionRequest: number;
  method: string;
  /** The request target without its query string. */
  path: string;
  status: number;
  /** Request line, headers and body. */
  requestBytes: number;
  /** Status line, headers and body as sent (chunk framing included). */
  responseBytes: number;
  responseBodyBytes: number;
}

const NGINX_LOG_LINE = /^(\d+) (\d+) (\d+) (\d+) (\d+) (\d+) "(\S+) (\S+) HTTP\/1\.[01]"$/;

export class Nginx {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  /**
   * nginx in `pod` on pod.ip:port, one process (master_process off), every path it writes (pid, logs, temp files)
   * in a temp dir of its own. Locations: the document root; /listing/ with autoindex; /upload/ takes PUT (WebDAV):
   * 201 with no body for a new file, its body read whole (a body nginx discards unread, as for a `return`, is left out
   * of its $request_length).
   */
  static async start(pod: Pod, port: number, root: DocumentRoot): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-nginx-'));
    const config = `
daemon off;
master_process off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  sendfile on;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${dir}/${kind};`).join('\n  ')}
  log_format counts '$remote_port $connection_requests $status $request_length $bytes_sent $body_bytes_sent "$request"';
  access_log ${dir}/access.log counts;
  server {
    listen ${pod.ip}:${port};
    root ${root.dir};
    location ${DOCUMENTS.listing} { autoindex on; }
    location ${DOCUMENTS.upload} { dav_methods PUT; }
  }
}
`;
    writeFileSync(join(dir, 'nginx.conf'), config);
    writeFileSync(join(dir, 'access.log'), '');
    const child = pod.spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
    const server = new Nginx(child, dir, port);
    try {
      await waitFor(async () => server.listening(pod) || child.exitCode !== null, { timeoutMs: 10_000, what: `nginx listening on ${pod.ip}:${port}` });
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** The access log's lines so far. */
  log(): NginxLogLine[] {
    return readFileSync(join(this.dir, 'access.log'), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const match = NGINX_LOG_LINE.exec(line);
        if (!match) throw new Error(`unexpected nginx access log line: ${line}`);
        const [clientPort, connectionRequest, status, requestBytes, responseBytes, responseBodyBytes] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
        return { clientPort, connectionRequest, method: match[7]!, path: match[8]!.split('?')[0]!, status, requestBytes, responseBytes, responseBodyBytes };
      });
  }

  /** Waits until nginx logged `count` requests from `clientPort` (it logs a request once it has sent the response) and returns them. */
  async logged(clientPort: number, count: number): Promise<NginxLogLine[]> {
    const lines = () => this.log().filter((line) => line.clientPort === clientPort);
    await waitFor(async () => lines().length >= count, { timeoutMs: 10_000, what: `${count} nginx access log lines from port ${clientPort}` });
    return lines();
  }

  /** Stops nginx (SIGTERM, waited for) and removes its temp dir. Safe twice. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private listening(pod: Pod): boolean {
    return pod.exec('ss', ['-Hltn', `src ${pod.ip}:${this.port}`]).trim() !== '';
  }
}

/** One request in the log of Python's http.server. */
export interface PythonLogLine {
  method: string;
  /** The request target without its query string. */
  path: string;
  status: number;
}

const PYTHON_LOG_LINE = /"(\S+) (\S+) HTTP\/1\.[01]" (\d{3}) /;

/** `python3 -m http.server` serving the document root on pod.ip:port (HTTP/1.0: one request per connection). */
export class PythonFileServer {
  private stderr = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stderr!.on('data', (data: Buffer) => (this.stderr += data.toString()));
  }

  static async start(pod: Pod, port: number, root: DocumentRoot): Promise<PythonFileServer> {
    const child = pod.spawn(python, ['-u', '-m', 'http.server', '--bind', pod.ip, '--directory', root.dir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new PythonFileServer(child, port);
    await lineFrom(child, 'python3 -m http.server', (line) => line.startsWith('Serving HTTP on'));
    return server;
  }

  /** The requests it logged so far, in order. */
  log(): PythonLogLine[] {
    return this.stderr.split('\n').flatMap((line) => {
      const match = PYTHON_LOG_LINE.exec(line);
      return match ? [{ method: match[1]!, path: match[2]!.split('?')[0]!, status: Number(match[3]) }] : [];
    });
  }

  /** Waits until it logged `count` requests in all and returns them. */
  async logged(count: number): Promise<PythonLogLine[]> {
    await waitFor(async () => this.log().length >= count, { timeoutMs: 10_000, what: `${count} requests in the log of python3 -m http.server` });
    return this.log();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      await exited;
    }
  }
}
