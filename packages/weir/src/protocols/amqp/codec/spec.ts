/**
 * AMQP 0-9-1 as data: the classes and methods of amqp0-9-1.xml with RabbitMQ's extensions (amqp0-9-1.extended.xml:
 * connection.blocked/unblocked/update-secret, exchange.bind/unbind, basic.nack, confirm, and exchange.declare's
 * auto-delete and internal restored from reserved bits). The access, file, stream, dtx and tunnel classes are left
 * out; their reserved traces (the 0-8 `ticket`, `insist`, `known-hosts`, …) stay as `reserved-N` fields because they
 * are still on the wire.
 *
 * scripts/gen-amqp-codec.ts turns this into methods.generated.ts; field names, types and order here ARE the wire
 * format. Field names are the spec's, camelCased (`routing-key` → `routingKey`).
 */

/** Wire types of method arguments and properties (spec §4.2.5). */
export type FieldType = 'octet' | 'short' | 'long' | 'longlong' | 'shortstr' | 'longstr' | 'bit' | 'table' | 'timestamp';

export interface FieldSpec {
  /** camelCase, as in the method interfaces: `routingKey`. */
  readonly name: string;
  /** As written in the spec: `routing-key`. */
  readonly specName: string;
  readonly type: FieldType;
  /**
   * A field 0-9-1 kept only for wire compatibility with 0-8 (`reserved-1` …). It is left out of the method interfaces:
   * encoders write zero / an empty string / a clear bit, decoders check it is there and ignore its value.
   */
  readonly reserved: boolean;
}

export type Peer = 'client' | 'server';

export interface MethodSpec {
  readonly classId: number;
  readonly methodId: number;
  /** `basic.publish`, `connection.start-ok`. */
  readonly name: string;
  readonly className: string;
  /** The method's own name within its class: `publish`. */
  readonly methodName: string;
  /** Followed by a content header frame and body frames (spec §2.3.5.2). */
  readonly content: boolean;
  /** Who may receive it (the spec's `chassis`); RabbitMQ's extension lets the server send basic.ack/nack/cancel too. */
  readonly acceptedBy: readonly Peer[];
  /** Full names of the methods that answer it; empty for an asynchronous method. */
  readonly responses: readonly string[];
  readonly fields: readonly FieldSpec[];
}

export interface ClassSpec {
  readonly id: number;
  readonly name: string;
  readonly methods: readonly MethodSpec[];
}

const CLIENT: readonly Peer[] = ['client'];
const SERVER: readonly Peer[] = ['server'];
const BOTH: readonly Peer[] = ['client', 'server'];

const fieldTypes: ReadonlySet<string> = new Set<FieldType>(['octet', 'short', 'long', 'longlong', 'shortstr', 'longstr', 'bit', 'table', 'timestamp']);

function camelCase(specName: string): string {
  return specName.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** `'routing-key:shortstr reserved-1:short'` → field specs, in order. */
function fields(list: string): FieldSpec[] {
  if (list === '') return [];
  return list.split(' ').map((entry) => {
    const [specName, type] = entry.split(':') as [string, string];
    if (!fieldTypes.has(type)) throw new Error(`spec: unknown field type ${type} in ${entry}`);
    return { name: camelCase(specName), specName, type: type as FieldType, reserved: specName.startsWith('reserved-') };
  });
}

/** [method id, name, accepted by, responses, content, fields] */
type MethodRow = readonly [number, string, readonly Peer[], readonly string[], boolean, string];

function amqpClass(id: number, name: string, rows: readonly MethodRow[]): ClassSpec {
  return {
    id,
    name,
    methods: rows.map(([methodId, methodName, acceptedBy, responses, content, list]) => ({
      classId: id,
      methodId,
      name: `${name}.${methodName}`,
      className: name,
      methodName,
      content,
      acceptedBy,
      responses: responses.map((response) => `${name}.${response}`),
      fields: fields(list),
    })),
  };
}

const NONE: readonly string[] = [];

export const classes: readonly ClassSpec[] = [
  amqpClass(10, 'connection', [
    [10, 'start', CLIENT, ['start-ok'], false, 'version-major:octet version-minor:octet server-properties:table mechanisms:longstr locales:longstr'],
    [11, 'start-ok', SERVER, NONE, false, 'client-properties:table mechanism:shortstr response:longstr locale:shortstr'],
    [20, 'secure', CLIENT, ['secure-ok'], false, 'challenge:longstr'],
    [21, 'secure-ok', SERVER, NONE, false, 'response:longstr'],
    [30, 'tune', CLIENT, ['tune-ok'], false, 'channel-max:short frame-max:long heartbeat:short'],
    [31, 'tune-ok', SERVER, NONE, false, 'channel-max:short frame-max:long heartbeat:short'],
    // reserved-1 was 0-8's capabilities, reserved-2 its insist bit.
    [40, 'open', SERVER, ['open-ok'], false, 'virtual-host:shortstr reserved-1:shortstr reserved-2:bit'],
    // reserved-1 was 0-8's known-hosts.
    [41, 'open-ok', CLIENT, NONE, false, 'reserved-1:shortstr'],
    [50, 'close', BOTH, ['close-ok'], false, 'reply-code:short reply-text:shortstr class-id:short method-id:short'],
    [51, 'close-ok', BOTH, NONE, false, ''],
    [60, 'blocked', BOTH, NONE, false, 'reason:shortstr'],
    [61, 'unblocked', BOTH, NONE, false, ''],
    [70, 'update-secret', SERVER, ['update-secret-ok'], false, 'new-secret:longstr reason:shortstr'],
    [71, 'update-secret-ok', CLIENT, NONE, false, ''],
  ]),
  amqpClass(20, 'channel', [
    // reserved-1 was 0-8's out-of-band.
    [10, 'open', SERVER, ['open-ok'], false, 'reserved-1:shortstr'],
    // reserved-1 was 0-8's channel-id (a longstr, unlike the other reserved strings).
    [11, 'open-ok', CLIENT, NONE, false, 'reserved-1:longstr'],
    [20, 'flow', BOTH, ['flow-ok'], false, 'active:bit'],
    [21, 'flow-ok', BOTH, NONE, false, 'active:bit'],
    [40, 'close', BOTH, ['close-ok'], false, 'reply-code:short reply-text:shortstr class-id:short method-id:short'],
    [41, 'close-ok', BOTH, NONE, false, ''],
  ]),
  // In every method below, a leading reserved-1:short was 0-8's access ticket.
  amqpClass(40, 'exchange', [
    [10, 'declare', SERVER, ['declare-ok'], false, 'reserved-1:short exchange:shortstr type:shortstr passive:bit durable:bit auto-delete:bit internal:bit no-wait:bit arguments:table'],
    [11, 'declare-ok', CLIENT, NONE, false, ''],
    [20, 'delete', SERVER, ['delete-ok'], false, 'reserved-1:short exchange:shortstr if-unused:bit no-wait:bit'],
    [21, 'delete-ok', CLIENT, NONE, false, ''],
    [30, 'bind', SERVER, ['bind-ok'], false, 'reserved-1:short destination:shortstr source:shortstr routing-key:shortstr no-wait:bit arguments:table'],
    [31, 'bind-ok', CLIENT, NONE, false, ''],
    [40, 'unbind', SERVER, ['unbind-ok'], false, 'reserved-1:short destination:shortstr source:shortstr routing-key:shortstr no-wait:bit arguments:table'],
    // 51, not 41: the extension's id, as RabbitMQ assigns it.
    [51, 'unbind-ok', CLIENT, NONE, false, ''],
  ]),
  amqpClass(50, 'queue', [
    [10, 'declare', SERVER, ['declare-ok'], false, 'reserved-1:short queue:shortstr passive:bit durable:bit exclusive:bit auto-delete:bit no-wait:bit arguments:table'],
    [11, 'declare-ok', CLIENT, NONE, false, 'queue:shortstr message-count:long consumer-count:long'],
    [20, 'bind', SERVER, ['bind-ok'], false, 'reserved-1:short queue:shortstr exchange:shortstr routing-key:shortstr no-wait:bit arguments:table'],
    [21, 'bind-ok', CLIENT, NONE, false, ''],
    [30, 'purge', SERVER, ['purge-ok'], false, 'reserved-1:short queue:shortstr no-wait:bit'],
    [31, 'purge-ok', CLIENT, NONE, false, 'message-count:long'],
    [40, 'delete', SERVER, ['delete-ok'], false, 'reserved-1:short queue:shortstr if-unused:bit if-empty:bit no-wait:bit'],
    [41, 'delete-ok', CLIENT, NONE, false, 'message-count:long'],
    // queue.unbind has no no-wait bit.
    [50, 'unbind', SERVER, ['unbind-ok'], false, 'reserved-1:short queue:shortstr exchange:shortstr routing-key:shortstr arguments:table'],
    [51, 'unbind-ok', CLIENT, NONE, false, ''],
  ]),
  amqpClass(60, 'basic', [
    [10, 'qos', SERVER, ['qos-ok'], false, 'prefetch-size:long prefetch-count:short global:bit'],
    [11, 'qos-ok', CLIENT, NONE, false, ''],
    [20, 'consume', SERVER, ['consume-ok'], false, 'reserved-1:short queue:shortstr consumer-tag:shortstr no-local:bit no-ack:bit exclusive:bit no-wait:bit arguments:table'],
    [21, 'consume-ok', CLIENT, NONE, false, 'consumer-tag:shortstr'],
    [30, 'cancel', BOTH, ['cancel-ok'], false, 'consumer-tag:shortstr no-wait:bit'],
    [31, 'cancel-ok', BOTH, NONE, false, 'consumer-tag:shortstr'],
    [40, 'publish', SERVER, NONE, true, 'reserved-1:short exchange:shortstr routing-key:shortstr mandatory:bit immediate:bit'],
    [50, 'return', CLIENT, NONE, true, 'reply-code:short reply-text:shortstr exchange:shortstr routing-key:shortstr'],
    [60, 'deliver', CLIENT, NONE, true, 'consumer-tag:shortstr delivery-tag:longlong redelivered:bit exchange:shortstr routing-key:shortstr'],
    [70, 'get', SERVER, ['get-ok', 'get-empty'], false, 'reserved-1:short queue:shortstr no-ack:bit'],
    [71, 'get-ok', CLIENT, NONE, true, 'delivery-tag:longlong redelivered:bit exchange:shortstr routing-key:shortstr message-count:long'],
    // reserved-1 was 0-8's cluster-id.
    [72, 'get-empty', CLIENT, NONE, false, 'reserved-1:shortstr'],
    [80, 'ack', BOTH, NONE, false, 'delivery-tag:longlong multiple:bit'],
    [90, 'reject', SERVER, NONE, false, 'delivery-tag:longlong requeue:bit'],
    [100, 'recover-async', SERVER, NONE, false, 'requeue:bit'],
    [110, 'recover', SERVER, ['recover-ok'], false, 'requeue:bit'],
    [111, 'recover-ok', CLIENT, NONE, false, ''],
    [120, 'nack', BOTH, NONE, false, 'delivery-tag:longlong multiple:bit requeue:bit'],
  ]),
  amqpClass(85, 'confirm', [
    [10, 'select', SERVER, ['select-ok'], false, 'no-wait:bit'],
    [11, 'select-ok', CLIENT, NONE, false, ''],
  ]),
  amqpClass(90, 'tx', [
    [10, 'select', SERVER, ['select-ok'], false, ''],
    [11, 'select-ok', CLIENT, NONE, false, ''],
    [20, 'commit', SERVER, ['commit-ok'], false, ''],
    [21, 'commit-ok', CLIENT, NONE, false, ''],
    [30, 'rollback', SERVER, ['rollback-ok'], false, ''],
    [31, 'rollback-ok', CLIENT, NONE, false, ''],
  ]),
];

/** Every method, class by class in the order above. */
export const methods: readonly MethodSpec[] = classes.flatMap((amqp) => amqp.methods);

const classById = new Map(classes.map((amqp) => [amqp.id, amqp]));
const byName = new Map(methods.map((method) => [method.name, method]));
const byId = new Map(methods.map((method) => [methodKey(method.classId, method.methodId), method]));

/** The class id and method id in one number, as they stand at the start of a method frame's payload. */
export function methodKey(classId: number, methodId: number): number {
  return classId * 0x10000 + methodId;
}

export function classSpecById(classId: number): ClassSpec | undefined {
  return classById.get(classId);
}

export function methodSpecByName(name: string): MethodSpec | undefined {
  return byName.get(name);
}

export function methodSpecById(classId: number, methodId: number): MethodSpec | undefined {
  return byId.get(methodKey(classId, methodId));
}

/** The basic class's content properties in property-flag order (spec §4.2.6.1, basic class `field`s). */
export const basicProperties: readonly FieldSpec[] = fields(
  'content-type:shortstr content-encoding:shortstr headers:table delivery-mode:octet priority:octet correlation-id:shortstr ' +
    'reply-to:shortstr expiration:shortstr message-id:shortstr timestamp:timestamp type:shortstr user-id:shortstr app-id:shortstr ' +
    // The spec's `reserved` (0-8's cluster-id); RabbitMQ keeps the name and passes it through.
    'cluster-id:shortstr',
);

export const BASIC_CLASS_ID = 60;
