/**
 * bench/flows-live: what tracing live TCP connections costs, our collector against a peer (NetObserv's eBPF
 * agent, PLATFORM.md), both against nothing attached, in the same run between two lab pods.
 *
 *   1. The peer is built once per version from Go modules (src/lab/peer/netobserv.ts); when it cannot be built
 *      or started, `peer.skipped` says why and the rest runs. BPF run-time statistics are on for the whole run.
 *   2. Two pods; a TCP server in one; a client in the other; every connection sends and receives 100 bytes.
 *   3. Idle: ours, then the peer, started alone with no lab traffic for BENCH_IDLE_SECONDS (default 60).
 *   4. Per rate — 500/s and 2,000/s paced, then as fast as CONCURRENCY connections allow, each for
 *      BENCH_RATE_SECONDS (default 20) — three modes in turn: baseline (nothing attached), ours (`sidecarless
 *      collector`, tracing both pods' cgroups) and the peer (watching both pods' host-side veths). Each agent is
 *      started fresh for its window (src/lab/flow-agents.ts) and stopped after it.
 *   5. Per window: achieved connections/s; per agent (src/lab/usage.ts): process cores (CPU of its cgroup) and
 *      BPF cores (run time of its programs), counted from the load's start until TAIL_SECONDS after its end (the
 *      peer exports up to its active timeout late) and divided by the load's duration; cores per 1,000
 *      connections/s; peak RSS; exactness. Ours: records read == 2 × connections, no drops, events per
 *      connection, and at paced rates freshness: a connection's close (the event's time_ns) → the event read
 *      from Kafka by a consumer in this process, and → its row queryable in ClickHouse (src/lab/row-freshness.ts:
 *      the enricher at its defaults, in this process, into an embedded engine of its own). The peer: its records read back from Kafka cover, both ways,
 *      exactly the distinct 5-tuples the client used.
 *   6. `floors`: issue 7's floors, each with the numbers it was judged on and met: true/false.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { enableRunTimeStats } from '../src/ebpf/stats.js';
import { startOurs, startPeer, type FlowAgent, type LabPair, type StartFlowAgent } from '../src/lab/flow-agents.js';
import { buildNetobserv, netobservVersion } from '../src/lab/peer/netobserv.js';
import { createLab } from '../src/lab/pods.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { runTcpClient, startTcpServer, type TcpClientResult } from '../src/lab/traffic.js';
import { peakRssMegabytes, round, sampleUsage, usageBetween } from '../src/lab/usage.js';
import { judgeFloors, type RateResult } from './flows-live-floors.js';

const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 20);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const RATES = [500, 2_000, 'max'] as const;
const CONCURRENCY = 32;
/** Paced: enough connections in flight that a slow one never holds back the pace. */
const PACED_CONCURRENCY = 64;
const PORT = 7301;
const PEER_ACTIVE_TIMEOUT_SECONDS = 5;
const TAIL_SECONDS = PEER_ACTIVE_TIMEOUT_SECONDS + 1;
/**
 * After an agent's start, before its window: the agent's own start-up work is not what a window measures. The JIT
 * warm-up of our collector under load is: each window starts a fresh collector (a DaemonSet pod runs warm for days,
 * so this errs against us; the peer, in Go, has no JIT).
 */
const SETTLE_MS = 2_000;

interface Load {
  client?: TcpClientResult;
  seconds: number;
  achieved_per_s: number;
}

async function drive(pair: LabPair, rate: (typeof RATES)[number], seconds = RATE_SECONDS): Promise<Load> {
  const paced = rate !== 'max';
  const client = await runTcpClient(pair.client, {
    host: pair.server.ip,
    port: pair.port,
    durationMs: seconds * 1000,
    ...(paced ? { connections: rate * seconds, ratePerSecond: rate, concurrency: PACED_CONCURRENCY } : { concurrency: CONCURRENCY }),
    sendBytes: 100,
    expectBytes: 100,
  });
  if (client.completed !== client.connections) throw new Error(`client completed ${client.completed} of ${client.connections}: ${client.errors.join('; ')}`);
  return { client, seconds: client.durationMs / 1000, achieved_per_s: Math.round(client.completed / (client.durationMs / 1000)) };
}

/** One agent, one window: `work` runs between two usage samples; the agent is stopped whatever happens. */
async function measure(agent: FlowAgent, work: () => Promise<Load>, tailSeconds: number, baselinePerSecond?: number): Promise<Record<string, unknown>> {
  try {
    await sleep(SETTLE_MS);
    const before = sampleUsage(agent);
    const load = await work();
    await sleep(tailSeconds * 1000);
    const usage = usageBetween(before, sampleUsage(agent), load.seconds);
    const peakRss = peakRssMegabytes(agent.pid);
    const perThousand = load.achieved_per_s > 0 ? { cores_per_1000_conn_s: round(usage.total_cores / (load.achieved_per_s / 1000), 4) } : {};
    const { client: _, ...loadFields } = load;
    const vsBaseline = baselinePerSecond ? { vs_baseline: round(load.achieved_per_s / baselinePerSecond, 3) } : {};
    return { ...loadFields, ...vsBaseline, ...usage, ...perThousand, peak_rss_mb: peakRss, ...(await agent.finish(load.client)) };
  } catch (error) {
    await agent.abort();
    throw error;
  }
}

async function buildPeer(): Promise<{ binary: string } | { skipped: string }> {
  try {
    process.stderr.write(`flows-live: NetObserv agent ${netobservVersion} (built once, then cached)\n`);
    return { binary: await buildNetobserv() };
  } catch (error) {
    return { skipped: (error as Error).message };
  }
}

export async function run(): Promise<Record<string, unknown>> {
  let peer = await buildPeer();
  const stamp = `bench-${randomBytes(3).toString('hex')}.`;
  const topics: string[] = [];
  const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-bench-flows-live' }, createLogger({ level: 'error', destination: 2 }));
  const admin = kafka.admin();
  await admin.connect();
  const stats = enableRunTimeStats();
  const lab = createLab({ name: 'bench-flows-live', pods: ['client', 'server'] });
  try {
    const pair: LabPair = { client: lab.pod('client'), server: lab.pod('server'), port: PORT };
    const tcpServer = await startTcpServer(pair.server, { port: PORT, expectBytes: 100, replyBytes: 100 });
    const agents = new Map<string, StartFlowAgent>([['ours', startOurs(kafka, pair, stamp, topics)]]);
    if ('binary' in peer) agents.set('peer', startPeer(kafka, admin, peer.binary, pair, stamp, topics, PEER_ACTIVE_TIMEOUT_SECONDS));
    const window = async (mode: string, name: string, work: () => Promise<Load>, live: boolean, tail: number, baseline?: number) => {
      process.stderr.write(`flows-live: ${name} ${mode}\n`);
      let agent: FlowAgent;
      try {
        agent = await agents.get(mode)!(name, live);
      } catch (error) {
        if (mode !== 'peer') throw error;
        // The peer that does not start is skipped for the rest of the run, like one that does not build.
        agents.delete(mode);
        return (peer = { skipped: `${name}: ${(error as Error).message}` });
      }
      return measure(agent, work, tail, baseline);
    };

    await drive(pair, 'max', 2); // warm-up of the lab: the client and server agents' JIT, ARP, the server's accept path
    const idle: Record<string, unknown> = {};
    const idleLoad = async (): Promise<Load> => (await sleep(IDLE_SECONDS * 1000), { seconds: IDLE_SECONDS, achieved_per_s: 0 });
    for (const mode of agents.keys()) idle[mode] = await window(mode, 'idle', idleLoad, false, 0);

    const rates: RateResult[] = [];
    for (const rate of RATES) {
      process.stderr.write(`flows-live: ${rate} baseline\n`);
      const baseline = (await drive(pair, rate)).achieved_per_s;
      const result: RateResult = { rate, baseline: { achieved_per_s: baseline } };
      for (const mode of agents.keys()) result[mode] = await window(mode, `r${rate}`, () => drive(pair, rate), rate !== 'max', TAIL_SECONDS, baseline);
      rates.push(result);
    }
    await tcpServer.stop();
    return {
      bench: 'flows-live',
      rate_seconds: RATE_SECONDS,
      idle_seconds: IDLE_SECONDS,
      peer: 'binary' in peer ? { agent: `netobserv-ebpf-agent ${netobservVersion}`, active_timeout_s: PEER_ACTIVE_TIMEOUT_SECONDS } : peer,
      idle,
      rates,
      floors: judgeFloors(rates, idle, IDLE_SECONDS),
    };
  } finally {
    lab.destroy();
    stats.release();
    // Only those that exist: an agent that failed to start may not have created its topics.
    const existing = new Set(await admin.listTopics());
    await admin
      .deleteTopics({ topics: topics.filter((topic) => existing.has(topic)) })
      .catch((error: Error) => process.stderr.write(`flows-live: topics left behind: ${error.message}\n`));
    await admin.disconnect();
  }
}
