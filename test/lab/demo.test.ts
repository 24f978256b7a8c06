/**
 * The README's first command runs the demo: it must print the edges, the RED table and the counts it promises, with
 * exact values (the demo's traffic is fixed: 480 requests over 7 keep-alive connections, 20 of them answered 503 and
 * 60 answered 404), and remove what it created.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

function runDemo(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // The demo stops by itself; this only bounds a hang, and SIGINT lets it remove its pods.
    const timer = setTimeout(() => child.kill('SIGINT'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The cells of the table row that starts with `first` (columns are separated by two or more spaces). */
function row(stdout: string, first: RegExp): string[] {
  const line = stdout.split('\n').find((text) => first.test(text));
  assert.ok(line, `a row matching ${first} in:\n${stdout}`);
  return line.trim().split(/\s{2,}/);
}

describe('sidecarless demo', () => {
  it('prints workload edges, requests, errors and latency per Service, and exact counts', async () => {
    const { code, stdout, stderr } = await runDemo();
    assert.equal(code, 0, `exit code; stderr:\n${stderr}\nstdout:\n${stdout}`);
    assert.deepEqual(row(stdout, /^shop-\w+\/frontend\s+shop-\w+\/backend/).slice(2, 5), ['backend', '8080', '3']);
    assert.deepEqual(row(stdout, /^shop-\w+\/frontend\s+billing-\w+\/payments/).slice(2, 5), ['payments', '9090', '3']);
    assert.deepEqual(row(stdout, /^shop-\w+\/backend\s+billing-\w+\/payments/).slice(2, 5), ['payments', '9090', '1']);
    const payments = row(stdout, /^billing-\w+\/payments\s+\d/);
    const backend = row(stdout, /^shop-\w+\/backend\s+\d/);
    assert.deepEqual([payments[1], payments[3]], ['180', '11.1'], 'payments: 100 + 20 + 60 requests, the 20 answered 503 are errors (404s are not)');
    assert.deepEqual([backend[1], backend[3]], ['300', '0.0']);
    for (const [p50, p99] of [payments.slice(4, 6), backend.slice(4, 6)]) {
      assert.ok(Number(p50) > 0 && Number(p99) >= Number(p50), `latency quantiles ${p50} ≤ ${p99} ms`);
    }
    assert.match(stdout, /480 HTTP responses over 7 connections;/);
    assert.match(stdout, /14 final rows stored \(14 with both ends named\), 960 exchange rows; drops: flows \{\}, http \{\}/);
    assert.match(stdout, /pods and their objects removed/);
  });
});
