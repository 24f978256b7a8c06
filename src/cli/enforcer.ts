/**
 * `sidecarless enforcer`: one per node; replays policies.v1 and metadata.v1 and keeps the node's policy maps equal
 * to what they compile to. Configuration: see src/common/config.ts (enforcer.*).
 */
import { runRole } from '../common/role.js';
import { startEnforcer } from '../enforcer/role.js';
import type { Command } from './command.js';

export const enforcerCommand: Command = {
  summary: 'enforce the NetworkPolicies of policies.v1 on this node\'s pods (eBPF), replaying policies.v1 and metadata.v1',
  run: (args) => runRole('enforcer', args, startEnforcer),
};
