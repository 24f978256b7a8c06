/**
 * A TCP relay on loopback that a test can cut: every connection through it is closed and new ones are refused
 * until it is opened again. Between a client and a real server (TLS passes through untouched), it is how a test
 * takes a server away from one client only, for as long as it needs, while others keep using it.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Opens a relay on a free loopback port to host:port. */
  static async open(target: { host: string; port: number }): Promise<TcpRelay> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const relay = new TcpRelay(port, target);
    await relay.resume();
    return relay;
  }

  /** Accepts connections again. */
  async resume(): Promise<void> {
    if (this.server !== undefined) return;
    const server = createServer((client) => {
      this.connections++;
      const upstream = connect(this.target.port, this.target.host);
      for (const [socket, other] of [[client, upstream], [upstream, client]] as const) {
        this.sockets.add(socket);
        socket.on('error', () => other.destroy());
        socket.on('close', () => {
          this.sockets.delete(socket);
          other.destroy();
        });
        socket.pipe(other);
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.server = server;
  }

  /** Closes every relayed connection and refuses new ones (connection refused) until resume(). */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  }
}
