/**
 * bench/avro: events per CPU-second through the Avro codecs of src/common/avro.ts, with the small probe.v1 event
 * of the test catalog (test/fixtures/schemas), so the numbers stay comparable with earlier runs.
 *
 *   1. encode: one framed buffer per event (what a one-event-per-message producer does).
 *   2. encodeInto: events packed back to back into one reused buffer (no allocation per event).
 *   3. decode: framing checks + writer-schema decode, bigint longs.
 *   4. The same event through plain avsc with number longs, to show what BigInt longs cost.
 *   Prints one JSON line; the floor keeps encode well inside a 300k events/s producer's per-event budget.
 */
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { loadRegistry } from '../src/common/avro.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const FLOOR_ENCODE_PER_CPU_S = 1_000_000;

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Runs `step` EVENTS times after a warm-up of the same length; returns events per CPU-second. */
function rate(step: (i: number) => void): number {
  for (let i = 0; i < EVENTS; i++) step(i);
  const start = cpuSeconds();
  for (let i = 0; i < EVENTS; i++) step(i);
  return Math.round(EVENTS / (cpuSeconds() - start));
}

export async function run(): Promise<Record<string, unknown>> {
  const registry = loadRegistry(fileURLToPath(new URL('../../test/fixtures/schemas', import.meta.url)));
  const codec = registry.codec('sidecarless.probe.v1');
  const event = {
    host_name: 'node-1',
    ts_ns: 1_764_000_000_000_000_000n,
    process_pid: 4242,
    thread_id: 4243,
    seq: 0n,
    target_pid: 0,
    signal: 10,
    thread_name: 'node',
  };
  const frame = codec.encode(event);
  const packed = Buffer.allocUnsafe(1 << 20);
  let offset = 0;
  const plain = avsc.Type.forSchema(codec.type.schema() as avsc.Schema);
  const numberEvent = { ...event, ts_ns: 1_764_000_000_000_000, seq: 0 };

  const encode = rate((i) => {
    event.seq = BigInt(i);
    codec.encode(event);
  });
  const encodeInto = rate(() => {
    offset = codec.encodeInto(event, packed, offset);
    if (offset < 0 || packed.length - offset < 2 * frame.length) offset = 0;
  });
  const decode = rate(() => registry.decode(frame));
  const plainEncode = rate((i) => {
    numberEvent.seq = i;
    plain.toBuffer(numberEvent);
  });
  return {
    bench: 'avro',
    events: EVENTS,
    event_bytes: frame.length,
    encode_per_cpu_s: encode,
    encode_into_per_cpu_s: encodeInto,
    decode_per_cpu_s: decode,
    plain_avsc_number_longs_encode_per_cpu_s: plainEncode,
    floor: { encode_per_cpu_s: FLOOR_ENCODE_PER_CPU_S },
    meets_floor: encode >= FLOOR_ENCODE_PER_CPU_S,
  };
}
