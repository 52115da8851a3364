import type { LayoverConfig } from '../config/layover-config.js';
import { corednsStanza, kubernetesConfigMap } from '../dns/coredns.js';
import { hostsFileLines } from '../dns/hosts-file.js';
import { loadOrCreateCa } from '../tls/ca.js';

/** `layover ca`: the CA certificate, creating the CA on first use so nodes can be set up before the first start. */
export async function printCa(config: LayoverConfig): Promise<string> {
  const { ca } = await loadOrCreateCa(config.caDir);
  return ca.certPem;
}

export function printCoredns(config: LayoverConfig, k8s: boolean): string {
  const options = { registries: config.registries, advertise: config.advertise };
  return k8s ? kubernetesConfigMap(options) : corednsStanza(options);
}

export function printHosts(config: LayoverConfig): string {
  return hostsFileLines({ registries: config.registries, advertise: config.advertise });
}
