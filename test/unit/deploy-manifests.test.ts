/**
 * deploy/: the Kubernetes manifests are validated offline against the Kubernetes API schemas bundled in the
 * kubernetes-models package (field types, required fields, enums) and against its TypeScript interfaces (unknown
 * fields, which the API server would refuse or drop), then checked against each other and against the proxy's own
 * config loader: the ConfigMap's file loads with the DaemonSet's environment, the probes reach /health on the port
 * the config listens on, the headless Service selects the pods, and so on. The systemd unit is parsed and checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import * as appsV1 from 'kubernetes-models/apps/v1';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import * as coreV1 from 'kubernetes-models/v1';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import { buildConfig, ConfigError, type Config } from '../../src/config/load.js';
import { MANAGED_TOOLS, REQUIRED_CMAKE_ARGS } from '../../src/llamacpp/version.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const K8S_DIR = path.join(ROOT, 'deploy/kubernetes');
const SYSTEMD_DIR = path.join(ROOT, 'deploy/systemd');
const DOCKERFILE = path.join(ROOT, 'deploy/docker/Dockerfile');

/** What the downward API gives a pod in these tests. */
const FIELDS: Record<string, string> = { 'spec.nodeName': 'gpu-node-1', 'status.podIP': '10.244.1.7', 'metadata.name': 'llama-smart-proxy-abcde', 'metadata.namespace': 'llama-smart-proxy' };
const VALID_TOKEN = 'a'.repeat(64);
/** The API groups the manifests use, by apiVersion (a new group needs its import here). */
const MODELS: Record<string, Record<string, unknown>> = { v1: coreV1, 'apps/v1': appsV1, 'networking.k8s.io/v1': networkingV1 };

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

interface Manifest {
  file: string;
  index: number;
  doc: K8sObject;
}

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`missing: ${what}`);
  return value;
}

function manifestFiles(): string[] {
  return readdirSync(K8S_DIR)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort();
}

function readManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of manifestFiles()) {
    const docs = parseAllDocuments(readFileSync(path.join(K8S_DIR, file), 'utf8'));
    docs.forEach((d, index) => {
      if (d.errors.length > 0) throw new Error(`${file} #${index}: ${d.errors.map((e) => e.message).join('; ')}`);
      const doc = d.toJS() as K8sObject | null;
      if (doc !== null) out.push({ file, index, doc });
    });
  }
  return out;
}

const manifests = readManifests();
const kustomization = parseYaml(readFileSync(path.join(K8S_DIR, 'kustomization.yaml'), 'utf8')) as {
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  [key: string]: unknown;
};

function only<T>(kind: string, name?: string): T {
  const found = manifests.filter((m) => m.doc.kind === kind && (name === undefined || m.doc.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` named ${name}` : ''}, found ${found.length}`);
  return found[0]!.doc as T;
}

const ds = only<IDaemonSet>('DaemonSet');
const podSpec = must(ds.spec?.template.spec, 'DaemonSet pod spec');
const podLabels = must(ds.spec?.template.metadata?.labels, 'pod template labels');
const proxy: IContainer = must(podSpec.containers.find((c) => c.name === 'proxy'), 'container "proxy"');
const configMap = only<IConfigMap>('ConfigMap');
const secret = only<ISecret>('Secret');
const services = manifests.filter((m) => m.doc.kind === 'Service').map((m) => m.doc as unknown as IService);
const headless = must(services.find((s) => s.spec?.clusterIP === 'None'), 'a headless Service (clusterIP: None)');
const client = must(services.find((s) => s.spec?.clusterIP !== 'None'), 'a client Service');
const namespace = must(only<K8sObject>('Namespace').metadata?.name, 'Namespace name');

function secretValues(s: ISecret): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) values[k] = Buffer.from(v, 'base64').toString('utf8');
  return { ...values, ...(s.stringData ?? {}) };
}

/** A container's environment as the kubelet builds it: values, $(VAR) references to earlier entries, downward API, Secrets. */
function containerEnv(c: IContainer, secrets: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      // Kubernetes expands $(NAME) from entries defined above; an unknown reference stays as written.
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = must(FIELDS[e.valueFrom.fieldRef.fieldPath], `downward API field ${e.valueFrom.fieldRef.fieldPath}`);
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      expect(ref.name, `${e.name}: the Secret it names`).toBe(secret.metadata?.name);
      const v = secrets[ref.key];
      if (v === undefined) {
        if (ref.optional) continue;
        throw new Error(`${e.name}: key "${ref.key}" is not in the Secret`);
      }
      env[e.name] = v;
    } else if (e.valueFrom) {
      throw new Error(`${e.name}: valueFrom kind not handled by this test`);
    }
  }
  return env;
}

/** The last stage's ENV and USER of the Dockerfile (one KEY=VALUE per ENV line there). */
function dockerfileRuntime(): { env: Record<string, string>; user: string | undefined; text: string } {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const stages = text.split(/^FROM\s/m);
  const last = stages[stages.length - 1] ?? '';
  const env: Record<string, string> = {};
  let user: string | undefined;
  for (const line of last.split('\n')) {
    const m = /^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
    const u = /^USER\s+(\S+)/.exec(line);
    if (u) user = u[1];
  }
  return { env, user, text };
}

const CONFIG_KEY = 'llama-smart-proxy.yaml';
const configText = must(configMap.data?.[CONFIG_KEY], `ConfigMap data["${CONFIG_KEY}"]`);
const configMount = must(proxy.volumeMounts?.find((m) => podSpec.volumes?.find((v) => v.name === m.name)?.configMap?.name === configMap.metadata?.name), 'the ConfigMap mounted in the proxy container');
const configPath = path.posix.join(configMount.mountPath, CONFIG_KEY);

/** The pod's environment: the image's, then the container's, with a valid token in the Secret (as the doc says to do). */
function podEnv(secrets: Record<string, string> = { ...secretValues(secret), 'cluster-token': VALID_TOKEN }): Record<string, string> {
  return { ...dockerfileRuntime().env, ...containerEnv(proxy, secrets) };
}

function loadPodConfig(env: Record<string, string> = podEnv()): Config {
  return buildConfig(parseYaml(configText), configPath, { env });
}

function containerPort(c: IContainer, port: number | string | undefined): number {
  if (typeof port === 'number') {
    expect(c.ports?.some((p) => p.containerPort === port), `port ${port} is one of the container's`).toBe(true);
    return port;
  }
  return must(c.ports?.find((p) => p.name === port)?.containerPort, `container port named ${String(port)}`);
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** Type-checks each object literal against its kubernetes-models interface: an unknown field is an excess property. */
function unknownFieldErrors(objects: Manifest[]): string[] {
  const file = path.join(ROOT, 'test/unit/__deploy_manifests_typecheck__.ts');
  const lines: string[] = [];
  objects.forEach((m, i) => lines.push(`import type { I${m.doc.kind} as T${i} } from 'kubernetes-models/${m.doc.apiVersion}/${m.doc.kind}';`));
  const starts: { line: number; label: string }[] = [];
  objects.forEach((m, i) => {
    starts.push({ line: lines.length, label: `${m.file} #${m.index} (${m.doc.kind})` });
    lines.push(...`export const d${i}: T${i} = ${JSON.stringify(m.doc, null, 1)};`.split('\n'));
  });
  const text = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: [],
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const same = (name: string) => path.resolve(name) === file;
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) => (same(name) ? ts.createSourceFile(name, text, language) : getSourceFile.call(host, name, language, ...rest));
  host.fileExists = (name) => same(name) || fileExists.call(host, name);
  host.readFile = (name) => (same(name) ? text : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  const source = must(program.getSourceFile(file), 'the virtual source file');
  const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
  return diagnostics.map((d) => {
    const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line;
    const where = [...starts].reverse().find((s) => s.line <= line)?.label ?? 'imports';
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

describe('deploy/kubernetes', () => {
  it('every document validates against the Kubernetes schema of its kind', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(7);
    const problems: string[] = [];
    for (const m of manifests) {
      const label = `${m.file} #${m.index} (${m.doc.apiVersion} ${m.doc.kind})`;
      const mod = MODELS[m.doc.apiVersion];
      if (!mod) {
        problems.push(`${label}: no model imported for apiVersion ${m.doc.apiVersion}`);
        continue;
      }
      const Model = mod[m.doc.kind] as (new (data: unknown) => { validate(): void }) | undefined;
      if (!Model) {
        problems.push(`${label}: no kind ${m.doc.kind} in ${m.doc.apiVersion}`);
        continue;
      }
      try {
        new Model(m.doc).validate();
      } catch (err) {
        problems.push(`${label}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('no document has a field its kind does not know (a typo is not silently dropped)', () => {
    expect(unknownFieldErrors(manifests)).toEqual([]);
  });

  it('the type check does catch an unknown field', () => {
    const typo: K8sObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { selctor: { app: 'x' } } };
    expect(unknownFieldErrors([{ file: 'typo.yaml', index: 0, doc: typo }]).join('\n')).toMatch(/typo\.yaml #0 \(Service\): [^\n]*selctor/);
  });

  it('the kustomization lists every manifest, sets their namespace and renames the image they use', () => {
    expect([...(kustomization.resources ?? [])].sort()).toEqual(manifestFiles());
    expect(kustomization.namespace).toBe(namespace);
    for (const m of manifests) if (m.doc.kind !== 'Namespace') expect(m.doc.metadata?.namespace, `${m.file}: namespace`).toBe(namespace);
    const images = new Set([...podSpec.containers, ...(podSpec.initContainers ?? [])].map((c) => must(c.image, `${c.name}: image`).replace(/:[^:/]+$/, '')));
    for (const image of images) expect(kustomization.images?.some((i) => i.name === image), `kustomization images rename ${image}`).toBe(true);
  });

  it("the ConfigMap's llama-smart-proxy.yaml loads with the project's config loader and the pod's environment", () => {
    const args = proxy.args ?? [];
    expect(args[0]).toBe('serve');
    expect(args[args.indexOf('--config') + 1]).toBe(configPath);
    const config = loadPodConfig();
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.cluster.node).toBe(FIELDS['spec.nodeName']);
    expect(config.cluster.token).toBe(VALID_TOKEN);
    expect(config.cluster.rpcHost).not.toBe('0.0.0.0');
    expect(config.llamaServer.autoBuild).toBe(false);
    expect(podEnv().LLAMA_SERVER, 'the image names its llama-server').toMatch(/^\/.+\/llama-server$/);
  });

  it("the Secret's placeholder token is refused, so the proxy does not start until it is replaced", () => {
    expect(secretValues(secret)['cluster-token']).toBeDefined();
    expect(() => loadPodConfig(podEnv(secretValues(secret)))).toThrow(ConfigError);
    expect(() => loadPodConfig(podEnv(secretValues(secret)))).toThrow(/LLAMA_SMART_PROXY_CLUSTER_TOKEN/);
  });

  it('the peers URL is the headless Service in this namespace, on the port the proxy listens on', () => {
    const config = loadPodConfig();
    expect(config.cluster.peers).toHaveLength(1);
    const url = new URL(config.cluster.peers[0]!);
    expect(url.hostname).toBe(`${headless.metadata?.name}.${namespace}.svc.cluster.local`);
    // A headless Service's DNS name gives pod IPs: the URL's port is the container's, not the Service's.
    expect(Number(url.port || 80)).toBe(config.server.port);
    expect(containerPort(proxy, 'http')).toBe(config.server.port);
  });

  it('the advertised URL (from the pod IP) points at the port the proxy listens on', () => {
    const config = loadPodConfig();
    const advertise = new URL(must(podEnv().LLAMA_SMART_PROXY_ADVERTISE_URL, 'LLAMA_SMART_PROXY_ADVERTISE_URL'));
    expect(advertise.hostname).toBe(FIELDS['status.podIP']);
    expect(Number(advertise.port)).toBe(config.server.port);
    expect(podEnv().LLAMA_SMART_PROXY_RPC_HOST).toBe(FIELDS['status.podIP']);
  });

  const reads = (name: string, value: string, pick: (c: Config) => unknown): boolean => {
    try {
      return pick(buildConfig({}, null, { env: { [name]: value } })) === value;
    } catch {
      return false;
    }
  };
  it.skipIf(!reads('LLAMA_SMART_PROXY_ADVERTISE_URL', 'http://10.0.0.1:8080', (c) => c.cluster.advertiseUrl))('the loader takes cluster.advertiseUrl from LLAMA_SMART_PROXY_ADVERTISE_URL', () => {
    expect(loadPodConfig().cluster.advertiseUrl).toBe(`http://${FIELDS['status.podIP']}:8080`);
  });
  it.skipIf(!reads('LLAMA_SMART_PROXY_RPC_HOST', '10.0.0.1', (c) => c.cluster.rpcHost))('the loader takes cluster.rpcHost from LLAMA_SMART_PROXY_RPC_HOST', () => {
    expect(loadPodConfig().cluster.rpcHost).toBe(FIELDS['status.podIP']);
  });

  it('readiness and liveness probe GET /health on the port the config listens on, without a key', () => {
    const config = loadPodConfig();
    for (const [name, probe] of [['readinessProbe', proxy.readinessProbe], ['livenessProbe', proxy.livenessProbe]] as const) {
      const get = must(probe?.httpGet, `${name}.httpGet`);
      expect(get.path, name).toBe('/health');
      expect(containerPort(proxy, get.port), name).toBe(config.server.port);
      expect(get.scheme ?? 'HTTP', name).toBe('HTTP');
      expect(get.httpHeaders ?? [], `${name}: no key in the manifest (GET /health is open)`).toEqual([]);
    }
  });

  it('the headless Service selects the DaemonSet pods, leaves out pods that are not ready and reaches the proxy port', () => {
    const config = loadPodConfig();
    expect(headless.spec?.clusterIP).toBe('None');
    expect(headless.spec?.publishNotReadyAddresses ?? false).toBe(false);
    expect(selects(headless.spec?.selector, podLabels)).toBe(true);
    const port = must(headless.spec?.ports?.[0], 'headless Service port');
    expect(containerPort(proxy, port.targetPort ?? port.port)).toBe(config.server.port);
    expect(selects(ds.spec?.selector.matchLabels, podLabels)).toBe(true);
  });

  it('the client Service selects the same pods and forwards to the proxy port', () => {
    const config = loadPodConfig();
    expect(client.spec?.clusterIP).not.toBe('None');
    expect(selects(client.spec?.selector, podLabels)).toBe(true);
    for (const port of client.spec?.ports ?? []) expect(containerPort(proxy, port.targetPort ?? port.port)).toBe(config.server.port);
    expect(client.spec?.ports?.length).toBeGreaterThan(0);
  });

  it('service links are off: they would set LLAMA_SMART_PROXY_PORT=tcp://..., which the loader reads as the port', () => {
    const links: Record<string, string> = {};
    for (const s of services) {
      const base = must(s.metadata?.name, 'Service name').toUpperCase().replace(/-/g, '_');
      const port = s.spec?.ports?.[0]?.port ?? 80;
      links[`${base}_SERVICE_HOST`] = '10.96.0.10';
      links[`${base}_SERVICE_PORT`] = String(port);
      links[`${base}_PORT`] = `tcp://10.96.0.10:${port}`;
    }
    if (podSpec.enableServiceLinks !== false) expect(() => loadPodConfig({ ...podEnv(), ...links })).not.toThrow();
    expect(podSpec.enableServiceLinks).toBe(false);
  });

  it('GPU nodes: the NVIDIA runtime class, the device plugin resource, a node selector and the GPU taint tolerated', () => {
    expect(podSpec.runtimeClassName).toBe('nvidia');
    const gpus = must(proxy.resources?.limits?.['nvidia.com/gpu'], 'limits nvidia.com/gpu');
    expect(Number(gpus)).toBeGreaterThanOrEqual(1);
    expect(Object.keys(podSpec.nodeSelector ?? {}).length).toBeGreaterThan(0);
    expect(podSpec.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && (t.operator === 'Exists' || t.value !== undefined))).toBe(true);
    // The planner reads host RAM from /proc/meminfo, which ignores a cgroup limit.
    expect(proxy.resources?.limits?.memory).toBeUndefined();
  });

  it('the cache dir is a hostPath or PVC volume at $LLAMA_SMART_PROXY_CACHE, owned by the user the proxy runs as', () => {
    const config = loadPodConfig();
    const cache = must(podEnv().LLAMA_SMART_PROXY_CACHE, 'LLAMA_SMART_PROXY_CACHE');
    expect(config.cacheDir).toBe(cache);
    expect(config.modelsDir.startsWith(`${cache}/`), 'modelsDir is kept in the cache volume').toBe(true);
    const mount = must(proxy.volumeMounts?.find((m) => m.mountPath === cache), `a volume mounted at ${cache}`);
    expect(mount.readOnly ?? false).toBe(false);
    const volume = must(podSpec.volumes?.find((v) => v.name === mount.name), `volume ${mount.name}`);
    expect(volume.hostPath !== undefined || volume.persistentVolumeClaim !== undefined).toBe(true);
    const uid = must(proxy.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser, 'runAsUser');
    const gid = proxy.securityContext?.runAsGroup ?? podSpec.securityContext?.runAsGroup ?? uid;
    expect(dockerfileRuntime().user?.split(':')[0], "the image's USER is the pod's runAsUser").toBe(String(uid));
    if (volume.hostPath) {
      // hostPath folders are created owned by root: an init container hands it to the proxy's user.
      const init = must(podSpec.initContainers?.find((c) => c.volumeMounts?.some((m) => m.name === mount.name && m.mountPath === cache)), 'an init container on the cache volume');
      expect(init.command).toEqual(['chown', `${uid}:${gid}`, cache]);
    }
  });

  it('the container runs as non-root with a read-only root file system, no privilege escalation and no capabilities', () => {
    const sc = must(proxy.securityContext, 'proxy securityContext');
    expect(sc.runAsNonRoot).toBe(true);
    expect(sc.runAsUser).not.toBe(0);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.capabilities?.drop).toContain('ALL');
    expect(sc.capabilities?.add ?? []).toEqual([]);
    expect(sc.privileged ?? false).toBe(false);
    if (sc.readOnlyRootFilesystem) expect(proxy.volumeMounts?.some((m) => m.mountPath === '/tmp'), 'a writable /tmp').toBe(true);
    expect(podSpec.hostNetwork ?? false).toBe(false);
  });

  it('the grace period outlasts the drain timeout plus the preStop pause', () => {
    const config = loadPodConfig();
    const pause = proxy.lifecycle?.preStop?.exec?.command?.[0] === 'sleep' ? Number(proxy.lifecycle.preStop.exec.command[1]) : 0;
    const grace = must(podSpec.terminationGracePeriodSeconds, 'terminationGracePeriodSeconds');
    expect(grace).toBeGreaterThan(config.pool.drainTimeout + pause);
    expect(grace).toBeGreaterThan(config.llamaServer.stopTimeout + pause);
  });

  it('the NetworkPolicy lets only the proxy pods reach the rpc-server ports, and everyone the proxy port', () => {
    const config = loadPodConfig();
    const np = only<INetworkPolicy>('NetworkPolicy');
    expect(selects(np.spec?.podSelector?.matchLabels, podLabels)).toBe(true);
    expect(np.spec?.policyTypes).toContain('Ingress');
    const rules = np.spec?.ingress ?? [];
    const [low, high] = config.cluster.rpcPortRange;
    const rpc = must(rules.find((r) => r.ports?.some((p) => p.port === low && p.endPort === high)), `a rule for ports ${low}-${high}`);
    expect(rpc.from?.length).toBeGreaterThan(0);
    for (const peer of rpc.from ?? []) {
      expect(peer.ipBlock).toBeUndefined();
      expect(peer.namespaceSelector).toBeUndefined();
      expect(selects(peer.podSelector?.matchLabels, podLabels)).toBe(true);
    }
    expect(rules.some((r) => r.ports?.some((p) => p.port === config.server.port))).toBe(true);
  });
});

/** A unit file as section -> key -> values (a key given twice has two values). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !current) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`not an environment file line: ${line}`);
    env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/** systemd time spans: "90", "90s", "1min 30s". */
function seconds(span: string): number {
  if (/^\d+$/.test(span)) return Number(span);
  let total = 0;
  for (const part of span.split(/\s+/)) {
    const m = /^(\d+)(ms|s|sec|m|min|h)$/.exec(part);
    if (!m) throw new Error(`time span not handled by this test: ${span}`);
    total += Number(m[1]) * ({ ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600 } as Record<string, number>)[m[2]!]!;
  }
  return total;
}

describe('deploy/systemd', () => {
  const unit = parseUnit(readFileSync(path.join(SYSTEMD_DIR, 'llama-smart-proxy.service'), 'utf8'));
  const envExample = parseEnvFile(readFileSync(path.join(SYSTEMD_DIR, 'llama-smart-proxy.env'), 'utf8'));
  const get = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];
  const one = (section: string, key: string): string | undefined => get(section, key).at(-1);
  const words = (section: string, key: string): string[] => get(section, key).flatMap((v) => v.split(/\s+/)).filter(Boolean);

  it('starts after the network is up and is enabled for multi-user', () => {
    expect(words('Unit', 'After')).toContain('network-online.target');
    expect(words('Unit', 'Wants')).toContain('network-online.target');
    expect(words('Install', 'WantedBy')).toContain('multi-user.target');
  });

  it('runs `serve` as an unprivileged user with the example environment file', () => {
    const user = must(one('Service', 'User'), 'User=');
    expect(['root', '0']).not.toContain(user);
    const exec = must(one('Service', 'ExecStart'), 'ExecStart=').split(/\s+/);
    expect(exec[0]!.startsWith('/')).toBe(true);
    expect(exec[1]).toBe('serve');
    expect(exec[exec.indexOf('--config') + 1]).toMatch(/^\/.+\.ya?ml$/);
    expect(path.basename(must(one('Service', 'EnvironmentFile'), 'EnvironmentFile=').replace(/^-/, ''))).toBe('llama-smart-proxy.env');
  });

  it('is hardened, writes only the cache the environment file names, and keeps the GPUs visible', () => {
    expect(one('Service', 'NoNewPrivileges')).toBe('yes');
    expect(one('Service', 'ProtectSystem')).toBe('strict');
    expect(one('Service', 'PrivateTmp')).toBe('yes');
    const cache = must(envExample.LLAMA_SMART_PROXY_CACHE, 'LLAMA_SMART_PROXY_CACHE in the env file');
    expect(words('Service', 'ReadWritePaths')).toContain(cache);
    // Each of these hides /dev/nvidia* (ProtectClock implies a DeviceAllow list).
    expect(one('Service', 'PrivateDevices') ?? 'no').toBe('no');
    expect(one('Service', 'ProtectClock') ?? 'no').toBe('no');
    expect(get('Service', 'DeviceAllow')).toEqual([]);
    // Node's JIT needs writable, executable memory.
    expect(one('Service', 'MemoryDenyWriteExecute') ?? 'no').toBe('no');
  });

  it('restarts on failure, lets no llama-server outlive it, and gives the drain time to finish', () => {
    const defaults = buildConfig({}, null, { env: {} });
    expect(one('Service', 'Restart')).toBe('on-failure');
    expect(['mixed', 'control-group']).toContain(one('Service', 'KillMode') ?? 'control-group');
    const stop = seconds(must(one('Service', 'TimeoutStopSec'), 'TimeoutStopSec='));
    expect(stop).toBeGreaterThan(defaults.pool.drainTimeout);
    expect(stop).toBeGreaterThan(defaults.llamaServer.stopTimeout);
    // The kernel OOM-killing one instance must not stop the unit (the proxy restarts the instance).
    expect(one('Service', 'OOMPolicy')).toBe('continue');
  });

  it("the environment file loads with the config loader once its placeholder token is replaced", () => {
    expect(() => buildConfig({}, null, { env: envExample })).toThrow(/LLAMA_SMART_PROXY_CLUSTER_TOKEN/);
    const config = buildConfig({}, null, { env: { ...envExample, LLAMA_SMART_PROXY_CLUSTER_TOKEN: VALID_TOKEN } });
    expect(config.cacheDir).toBe(envExample.LLAMA_SMART_PROXY_CACHE);
    expect(config.cluster.node).toBe(envExample.LLAMA_SMART_PROXY_NODE);
    expect(config.cluster.token).toBe(VALID_TOKEN);
  });
});

describe('deploy/docker/Dockerfile', () => {
  it('runs the built CLI as a non-root user, with the llama.cpp tools it builds', () => {
    const { env, user, text } = dockerfileRuntime();
    expect(user).toBeDefined();
    expect(user!.split(':')[0]).not.toBe('0');
    expect(text).toMatch(/^ENTRYPOINT \["node", "\/app\/dist\/cli\/main\.js"\]$/m);
    const server = must(env.LLAMA_SERVER, 'ENV LLAMA_SERVER');
    // The llama.cpp stage copies every tool the managed build has (the RPC server included) beside llama-server.
    for (const tool of MANAGED_TOOLS) {
      expect(text).toContain(`/build/bin/${tool}`);
      expect(text).toContain(` ${tool}`);
    }
    expect(text).toContain(`COPY --from=llama ${path.posix.dirname(path.posix.dirname(server))} `);
    for (const arg of REQUIRED_CMAKE_ARGS) expect(text).toContain(arg);
    expect(text).toMatch(/-DGGML_NATIVE=OFF/);
  });
});
