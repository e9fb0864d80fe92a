import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type ApiName,
  type DecodedResponseOf,
  type FoundMessage,
  type Header,
  type Message,
  type RequestOf,
  type ResponseOf,
  type TopicDescription,
} from './index.js';

// Type-level checks: this file fails `tsc` when the derived types drift from the schema's mapping.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

expectType<
  Equal<
    ApiName,
    | 'Handshake'
    | 'Ping'
    | 'CreateTopic'
    | 'DeleteTopic'
    | 'ListTopics'
    | 'DescribeTopic'
    | 'AlterTopic'
    | 'InitProducer'
    | 'Produce'
    | 'Fetch'
    | 'ListOffsets'
    | 'JoinGroup'
    | 'SyncGroup'
    | 'Heartbeat'
    | 'LeaveGroup'
    | 'CommitOffsets'
    | 'FetchOffsets'
    | 'ListGroups'
    | 'DescribeGroup'
    | 'GetMessage'
    | 'Subscribe'
    | 'Unsubscribe'
    | 'Settle'
    | 'Extend'
    | 'Receive'
    | 'Peek'
    | 'DescribeSharedGroup'
    | 'BeginTransaction'
    | 'TransactionProduce'
    | 'EndTransaction'
    | 'JoinProducerGroup'
    | 'ListProducers'
    | 'GetTrace'
    | 'ListUsers'
    | 'AddUser'
    | 'DeleteUser'
    | 'ChangePassword'
    | 'SetUserTags'
    | 'ListVhosts'
    | 'AddVhost'
    | 'DeleteVhost'
    | 'ListPermissions'
    | 'SetPermissions'
    | 'ClearPermissions'
    | 'ExportDefinitions'
    | 'ImportDefinitions'
    | 'LeaveProducerGroup'
  >
>();
expectType<Equal<Header, { readonly name: string; readonly isString: boolean; readonly value: Uint8Array }>>();
expectType<
  Equal<
    Message,
    {
      readonly id: Uint8Array | null;
      readonly key: Uint8Array | null;
      readonly tag: string | null;
      readonly headers: readonly Header[];
      readonly timestamp: number;
      readonly body: Uint8Array;
    }
  >
>();
expectType<Equal<RequestOf<'Produce'>['messages'], readonly Message[]>>();
expectType<Equal<RequestOf<'Produce'>['acks'], number>>();
expectType<Equal<RequestOf<'JoinGroup'>['topics'], readonly string[]>>();
expectType<Equal<RequestOf<'GetMessage'>['topic'], string | null>>();
expectType<Equal<ResponseOf<'Produce'>['duplicate'], boolean>>();
expectType<Equal<ResponseOf<'Fetch'>['records'], Uint8Array | readonly Uint8Array[]>>();
expectType<Equal<DecodedResponseOf<'Fetch'>['records'], Buffer>>();
expectType<Equal<ResponseOf<'DescribeTopic'>['topic'], TopicDescription>>();
expectType<Equal<FoundMessage['headers'], readonly Header[]>>();
expectType<Equal<keyof RequestOf<'Ping'>, never>>();

describe('protocol: derived types', () => {
  it('protocol: encoders accept exactly the schema types and decoders narrow by name', () => {
    // @ts-expect-error acks is an int8 (number)
    assert.throws(() => encodeRequest('Produce', 1, { topic: 't', partition: 0, acks: '1', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: [] }));
    // @ts-expect-error a required field is missing
    assert.throws(() => encodeRequest('DeleteTopic', 1, {}));
    // @ts-expect-error no such API
    assert.throws(() => encodeRequest('Nope', 1, {}));
    const frame = encodeResponse('ListOffsets', 3, { offset: 42 });
    const decoded = decodeResponse(frame.subarray(4));
    if (decoded.name === 'ListOffsets' && decoded.body !== null) {
      const offset: number = decoded.body.offset;
      assert.equal(offset, 42);
    } else assert.fail('expected a ListOffsets body');
    const request = decodeRequest(encodeRequest('Ping', 1, {}).subarray(4));
    assert.equal(request.name, 'Ping');
  });
});
