/** Query and reply bytes for the DNS unit tests, encoded by dns2. */
import { Packet, type Resource } from 'dns2';

export interface QueryOptions {
  id?: number;
  rd?: boolean;
  edns?: { udpPayloadSize?: number; doFlag?: boolean; version?: number };
}

export function query(name: string, type: number, options: QueryOptions = {}): Buffer {
  const packet = new Packet(new Packet.Header({ id: options.id ?? 0x1234, rd: options.rd === false ? 0 : 1 }));
  packet.questions.push(new Packet.Question(name, type, Packet.CLASS.IN));
  if (options.edns) packet.additionals.push(Packet.Resource.EDNS([], options.edns));
  return packet.toBuffer();
}

export interface ReplyOptions {
  id?: number;
  rcode?: number;
  tc?: boolean;
  answers?: Partial<Resource>[];
  authorities?: Partial<Resource>[];
  additionals?: Partial<Resource>[];
}

export function reply(name: string, type: number, options: ReplyOptions = {}): Buffer {
  const packet = new Packet(new Packet.Header({ id: options.id ?? 0x1234, qr: 1, rd: 1, ra: 1, rcode: options.rcode ?? 0, tc: options.tc ? 1 : 0 }));
  packet.questions.push(new Packet.Question(name, type, Packet.CLASS.IN));
  const resource = (r: Partial<Resource>) => new Packet.Resource({ name, class: Packet.CLASS.IN, ttl: 300, ...r });
  packet.answers = (options.answers ?? []).map(resource);
  packet.authorities = (options.authorities ?? []).map(resource);
  packet.additionals = (options.additionals ?? []).map((r) => (r.type === Packet.TYPE.EDNS ? (r as Resource) : resource(r)));
  return packet.toBuffer();
}

export function soa(ttl: number, minimum: number): Partial<Resource> {
  return {
    name: 'test',
    type: Packet.TYPE.SOA,
    ttl,
    primary: 'ns.test',
    admin: 'hostmaster.test',
    serial: 1,
    refresh: 3600,
    retry: 600,
    expiration: 86400,
    minimum,
  };
}
