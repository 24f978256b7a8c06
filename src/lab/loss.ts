/**
 * Packet loss for one TCP source port of a pod, without netem (not in this kernel): an nftables netdev table on
 * the pod's host-side veth drops a random share of the packets the pod sends from that port.
 *
 * Why the host side and not a rule inside the pod's netns: a drop in the sender's own output path (inet output
 * or netdev egress) is reported back to TCP as a local transmit error, which TCP retries without counting a
 * retransmission; measured here, 9 such drops gave 0 to 2 retransmitted segments. Dropped on the host side of the
 * veth, the packet has left the pod's stack, so TCP sees real loss and retransmits (RetransSegs, SACK,
 * tcp_retransmit_skb), as it would on a lossy link.
 * Every packet from the port counts, SYN-ACKs and pure ACKs included: the client may retransmit too, and a dropped
 * SYN-ACK delays a connect by the 1 s initial RTO.
 * The table lives in the host netns and is not removed with the pod's netns: remove() or the lab's teardown
 * deletes it.
 */
import { run } from './run.js';

export interface PacketLoss {
  readonly table: string;
  /** Deletes the table; safe to call twice. */
  remove(): void;
}

export function tableExists(table: string): boolean {
  try {
    run('nft', ['list', 'table', 'netdev', table]);
    return true;
  } catch {
    return false;
  }
}

export function addLoss(table: string, hostVeth: string, sport: number, percent: number): PacketLoss {
  if (!Number.isInteger(sport) || sport < 1 || sport > 65535) throw new RangeError(`dropOutgoing: sport ${sport} is not a port`);
  if (!(percent > 0 && percent <= 100)) throw new RangeError(`dropOutgoing: percent ${percent} must be in (0, 100]`);
  // Declaring, deleting and redeclaring the table in one transaction replaces an earlier rule for the same port.
  // The share is in hundredths of a percent; 100 % drops every packet (numgen's range stops below 10000). Drops
  // are per packet as the veth carries it: with GSO one packet can hold up to 64 KiB of segments.
  const share = Math.round(percent * 100);
  run(
    'nft',
    ['-f', '-'],
    `table netdev ${table} {}
delete table netdev ${table}
table netdev ${table} {
  chain lossy {
    type filter hook ingress device "${hostVeth}" priority 0; policy accept;
    tcp sport ${sport} ${share < 10000 ? `numgen random mod 10000 < ${share} ` : ''}drop
  }
}
`,
  );
  return {
    table,
    remove: () => {
      if (tableExists(table)) run('nft', ['delete', 'table', 'netdev', table]);
    },
  };
}
