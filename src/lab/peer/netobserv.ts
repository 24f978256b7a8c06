/**
 * NetObserv's eBPF agent, a peer to measure our collector against in the same run (PLATFORM.md, "A peer to
 * measure against"). Dev-only:
 *   1. build: once per version, from the Go module proxy, into ~/.cache/sidecarless/netobserv-<version>/. `go
 *      install` is refused (the agent's go.mod has a replace directive), so a wrapper module requires the agent,
 *      repeats its replace directives, starts from its go.sum and builds its main package, …/cmd. The checksum
 *      database does not know the agent's module: GONOSUMDB names that module alone.
 *   2. start: in a cgroup of its own (its CPU time is read there), exporting to Kafka and watching only the given
 *      interfaces, under `setarch --uname-2.6`: it loads an fentry program even with RTT off, this kernel refuses
 *      fentry, and on an "old" kernel it loads a kprobe variant instead (never attached). Ready once it holds a
 *      TCX link per interface and direction.
 *   3. stop: SIGTERM. It exports a flow when its active timeout evicts it, not on stop: wait that long first.
 *   4. count: reads its topic back and matches its records to the connections of one client and server.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Kafka } from 'kafkajs';
import { Cgroup } from '../../ebpf/cgroup.js';
import { spawnInCgroup } from '../cgroup-spawn.js';
import { readTopic } from '../kafka-read.js';
import type { MeasuredProcess } from '../usage.js';
import { decodeNetobservFlow } from './netobserv-record.js';

/** The only versions the module proxy serves are v1.10.0-community and v1.10.1-community. */
export const netobservVersion = 'v1.10.1-community';
const agentModule = 'github.com/netobserv/netobserv-ebpf-agent';
const readyWithinMs = 30_000;
const stopWithinMs = 10_000;

export function netobservCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sidecarless', `netobserv-${netobservVersion}`);
}

async function go(dir: string, args: string[]): Promise<string> {
  try {
    const env = { ...process.env, GONOSUMDB: agentModule, GOFLAGS: '-mod=mod' };
    return (await promisify(execFile)('go', args, { cwd: dir, env, maxBuffer: 64 << 20, timeout: 30 * 60_000 })).stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    const why = stderr.split('\n').slice(-3).join(' / ') || (error as Error).message;
    throw new Error(`\`go ${args.join(' ')}\` in ${dir} failed: ${why}`, { cause: error });
  }
}

/** The agent's executable, built on first use (about 4 minutes on 2 cores); throws saying why it cannot be built. */
export async function buildNetobserv(): Promise<string> {
  const dir = netobservCacheDir();
  const binary = join(dir, 'netobserv-ebpf-agent');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const download = JSON.parse(await go(dir, ['mod', 'download', '-json', `${agentModule}@${netobservVersion}`])) as { Dir: string; Sum: string; GoModSum: string };
  const agentGoMod = readFileSync(join(download.Dir, 'go.mod'), 'utf8');
  const goVersion = /^go (\S+)$/m.exec(agentGoMod)?.[1] ?? '1.24';
  const replaces = agentGoMod.match(/^replace (?:\([^)]*\)|.*)$/gm) ?? [];
  const goMod = ['module sidecarless.dev/lab/netobserv', '', `go ${goVersion}`, '', `require ${agentModule} ${netobservVersion}`, '', ...replaces, ''];
  writeFileSync(join(dir, 'go.mod'), goMod.join('\n'));
  const ownSums = `${agentModule} ${netobservVersion} ${download.Sum}\n${agentModule} ${netobservVersion}/go.mod ${download.GoModSum}\n`;
  writeFileSync(join(dir, 'go.sum'), readFileSync(join(download.Dir, 'go.sum'), 'utf8') + ownSums);
  await go(dir, ['build', '-trimpath', '-ldflags=-s -w', '-o', `${binary}.partial`, `${agentModule}/cmd`]);
  renameSync(`${binary}.partial`, binary);
  return binary;
}

export interface NetobservAgent extends MeasuredProcess {
  /** SIGTERM (SIGKILL if it lingers), then removes its cgroup. Safe to call twice. */
  stop(): Promise<void>;
}

function bpfLinks(pid: number): number {
  let links = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:bpf_link') links++;
    } catch {
      // closed meanwhile
    }
  }
  return links;
}

export async function startNetobserv(
  binary: string,
  options: { interfaces: string[]; brokers: readonly string[]; topic: string; activeTimeoutSeconds: number },
): Promise<NetobservAgent> {
  const cgroup = Cgroup.create(`sidecarless-peer-${randomBytes(4).toString('hex')}`);
  // Only PATH from our environment: nothing else may configure the agent by accident.
  const env = {
    PATH: process.env.PATH,
    EXPORT: 'kafka',
    KAFKA_BROKERS: options.brokers.join(','),
    KAFKA_TOPIC: options.topic,
    INTERFACES: options.interfaces.join(','),
    CACHE_ACTIVE_TIMEOUT: `${options.activeTimeoutSeconds}s`,
    // Room for every flow of an active timeout at the highest rate; when full, the agent sends the rest one by one.
    CACHE_MAX_FLOWS: '200000',
    SAMPLING: '1',
  };
  const child: ChildProcess = spawnInCgroup(cgroup, 'setarch', ['x86_64', '--uname-2.6', binary], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2048)));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const stop = async () => {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), stopWithinMs);
    await exit;
    clearTimeout(killer);
    cgroup.remove();
  };
  const deadline = Date.now() + readyWithinMs;
  while (exited || bpfLinks(child.pid!) < 2 * options.interfaces.length) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`NetObserv agent ${exited ? 'exited' : `did not attach to ${options.interfaces.join(', ')} within ${readyWithinMs} ms`}: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { pid: child.pid!, cgroup, stop };
}

/** What the agent exported about the TCP connections from one client address to one server address and port. */
export interface NetobservCount {
  records: number;
  /** Distinct 5-tuples seen in both directions: one per connection unless the client reused a port. */
  connections: number;
  /** 5-tuples seen in one direction only. */
  oneWay: number;
  /** Records about anything else on the watched interfaces. */
  otherRecords: number;
  /** Packet bytes (headers included) and packets of the matched records, both directions. */
  bytes: number;
  packets: number;
}

export async function countNetobservConnections(kafka: Kafka, topic: string, client: string, server: string, port: number): Promise<NetobservCount> {
  const count: NetobservCount = { records: 0, connections: 0, oneWay: 0, otherRecords: 0, bytes: 0, packets: 0 };
  const toServer = new Set<number>();
  const toClient = new Set<number>();
  const reader = await readTopic(kafka, topic, (value) => {
    const flow = decodeNetobservFlow(value);
    count.records++;
    const tcp = flow.protocol === 6;
    if (tcp && flow.src === client && flow.dst === server && flow.dstPort === port) toServer.add(flow.srcPort);
    else if (tcp && flow.src === server && flow.srcPort === port && flow.dst === client) toClient.add(flow.dstPort);
    else return void count.otherRecords++;
    count.bytes += flow.bytes;
    count.packets += flow.packets;
  });
  await reader.drain();
  for (const clientPort of toServer) if (toClient.has(clientPort)) count.connections++;
  count.oneWay = toServer.size + toClient.size - 2 * count.connections;
  return count;
}
