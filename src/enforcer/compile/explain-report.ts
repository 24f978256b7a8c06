/** An Explanation as the lines `sidecarless policy explain` prints. Pure. */
import type { Explanation, SideExplanation } from './explain.js';

const VERDICTS: Record<SideExplanation['verdict'], string> = {
  open: 'allowed: no policy selects it for this direction',
  allow: 'allowed',
  deny: 'denied: no rule of the policies that select it allows this',
  'audit-allow': 'allowed (audit: only audit-mode policies select it, and one of their rules allows this)',
  'audit-deny': 'allowed (audit: would be denied; only audit-mode policies select it)',
};

function side(name: string, explanation: SideExplanation): string[] {
  const subject = explanation.subject === undefined ? 'no identity (not a pod)' : `identity ${explanation.subject}`;
  const lines = [`${explanation.direction} of ${name} (${subject}): ${VERDICTS[explanation.verdict]}`];
  if (explanation.isolatedBy.length > 0) lines.push(`  selected by: ${explanation.isolatedBy.join(', ')}`);
  const peers = [explanation.peerIdentity === undefined ? 'no pod identity' : `pod identity ${explanation.peerIdentity}`, explanation.peerPrefix === undefined ? 'no policy prefix' : `prefix ${explanation.peerPrefix}`];
  if (explanation.verdict !== 'open') lines.push(`  peer: ${peers.join(', ')}`);
  for (const match of explanation.matches) {
    const entry = match.entry;
    const peer = entry.peer === 0n ? 'any peer' : `peer ${entry.peer}`;
    const rules = match.rules.map((rule) => `${rule.policy} ${rule.direction}[${rule.rule}]`).join(', ');
    lines.push(`  entry ${entry.protocol} ${entry.portFirst}-${entry.portLast} ${peer}${entry.audit ? ' (audit)' : ''}: ${rules}`);
  }
  return lines;
}

export function explanationLines(from: string, to: string, port: number, protocol: string, explanation: Explanation): string[] {
  return [`${from} → ${to} ${port}/${protocol}: ${explanation.allowed ? 'ALLOWED' : 'DENIED'}`, ...side(from, explanation.egress), ...side(to, explanation.ingress)];
}
