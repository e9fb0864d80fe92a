import type { apis, pushes, structs } from './schema.js';

/**
 * TypeScript types derived from the schema at the type level, so a field added to `schema.ts` shows up here (and in
 * every handler that builds or reads the message) without a build step.
 *
 * Mapping: integers → number, bool → boolean, string → string, nullableString → string | null, bytes → Uint8Array,
 * nullableBytes → Uint8Array | null, array → readonly T[], struct → its object type. `records` differ by direction:
 * an encoder takes one buffer or a list of buffers (the broker hands over stored batches without concatenating them);
 * a decoder returns one `Buffer` view of the frame.
 */

/** Whether a type describes a value handed to an encoder or one returned by a decoder. */
export type Direction = 'encode' | 'decode';

type Apis = (typeof apis)[number];
type Structs = typeof structs;

/** Name of every API, e.g. `'Produce'`. */
export type ApiName = Apis['name'];
/** Name of every struct, e.g. `'Message'`. */
export type StructName = keyof Structs;

type IntegerType = 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32';

type FieldValue<T, D extends Direction> = T extends IntegerType
  ? number
  : T extends 'bool'
    ? boolean
    : T extends 'string'
      ? string
      : T extends 'nullableString'
        ? string | null
        : T extends 'bytes'
          ? Uint8Array
          : T extends 'nullableBytes'
            ? Uint8Array | null
            : T extends 'records'
              ? D extends 'encode'
                ? Uint8Array | readonly Uint8Array[]
                : Buffer
              : T extends { readonly array: infer E }
                ? readonly FieldValue<E, D>[]
                : T extends { readonly struct: infer S extends StructName }
                  ? StructOf<S, D>
                  : never;

type FieldsOf<F extends readonly { readonly name: string; readonly type: unknown }[], D extends Direction> = {
  readonly [K in F[number] as K['name']]: FieldValue<K['type'], D>;
};

/** The object type of a struct. */
export type StructOf<S extends StructName, D extends Direction = 'encode'> = FieldsOf<Structs[S], D>;

type ApiOf<N extends ApiName> = Extract<Apis, { readonly name: N }>;

/** The body of a request, as handed to `encodeRequest`. */
export type RequestOf<N extends ApiName> = FieldsOf<ApiOf<N>['request'], 'encode'>;
/** The body of a response, as handed to `encodeResponse` (`records` may be a list of buffers). */
export type ResponseOf<N extends ApiName> = FieldsOf<ApiOf<N>['response'], 'encode'>;
/** The body of a request as `decodeRequest` returns it. */
export type DecodedRequestOf<N extends ApiName> = FieldsOf<ApiOf<N>['request'], 'decode'>;
/** The body of a response as `decodeResponse` returns it (`records` is one `Buffer`). */
export type DecodedResponseOf<N extends ApiName> = FieldsOf<ApiOf<N>['response'], 'decode'>;

type Pushes = (typeof pushes)[number];
/** Name of every push, e.g. `'Deliver'`. */
export type PushName = Pushes['name'];
type PushSpecOf<N extends PushName> = Extract<Pushes, { readonly name: N }>;
/** The body of a push, as handed to `encodePush`. */
export type PushOf<N extends PushName> = FieldsOf<PushSpecOf<N>['fields'], 'encode'>;
/** The body of a push as `decodePush` returns it. */
export type DecodedPushOf<N extends PushName> = FieldsOf<PushSpecOf<N>['fields'], 'decode'>;
/** A decoded push frame; narrowing on `name` narrows `body`. */
export type DecodedPush = { [N in PushName]: { readonly key: number; readonly name: N; readonly body: DecodedPushOf<N> } }[PushName];

export type Header = StructOf<'Header'>;
export type Message = StructOf<'Message'>;
export type TopicConfig = StructOf<'TopicConfig'>;
export type PartitionState = StructOf<'PartitionState'>;
export type TopicDescription = StructOf<'TopicDescription'>;
export type TopicPartitions = StructOf<'TopicPartitions'>;
export type PartitionOffset = StructOf<'PartitionOffset'>;
export type GroupMember = StructOf<'GroupMember'>;
export type GroupLag = StructOf<'GroupLag'>;
export type GroupSummary = StructOf<'GroupSummary'>;
export type FoundMessage = StructOf<'FoundMessage'>;
export type Delivery = StructOf<'Delivery'>;
export type Outcome = StructOf<'Outcome'>;
export type DeliveryRef = StructOf<'DeliveryRef'>;
export type SharedTopicState = StructOf<'SharedTopicState'>;
export type SharedConsumer = StructOf<'SharedConsumer'>;
export type UserInfo = StructOf<'UserInfo'>;
export type PermissionInfo = StructOf<'PermissionInfo'>;

/** A decoded request frame; narrowing on `name` narrows `body`. */
export type DecodedRequest = {
  [N in ApiName]: {
    readonly apiKey: number;
    readonly name: N;
    readonly apiVersion: number;
    readonly correlationId: number;
    readonly body: DecodedRequestOf<N>;
  };
}[ApiName];

/** A decoded response frame; `body` is null exactly when `errorCode` is not 0. Narrowing on `name` narrows `body`. */
export type DecodedResponse = {
  [N in ApiName]: {
    readonly apiKey: number;
    readonly name: N;
    readonly correlationId: number;
    readonly errorCode: number;
    readonly errorMessage: string | null;
    readonly body: DecodedResponseOf<N> | null;
  };
}[ApiName];
