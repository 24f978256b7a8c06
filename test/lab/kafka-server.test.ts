/**
 * The local Kafka's storage format (src/lab/stack/kafka-server.ts): a fresh cluster id is a Kafka Uuid in base64url
 * that never starts with '-' (the format tool took `-t -Ab…` for a missing argument, and a fresh machine's first
 * `stack up` failed one time in 64).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freshClusterId } from '../../src/lab/stack/kafka-server.js';

describe('the local Kafka storage format', () => {
  it('makes fresh cluster ids of 16 random bytes in base64url, none starting with -', () => {
    // Without the rule, 5,000 draws start with '-' about 78 times: this cannot pass by luck.
    const ids = Array.from({ length: 5_000 }, () => freshClusterId());
    assert.deepEqual(ids.filter((id) => !/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)), []);
    assert.equal(Buffer.from(ids[0]!, 'base64url').length, 16);
    assert.equal(new Set(ids).size, ids.length);
  });
});
